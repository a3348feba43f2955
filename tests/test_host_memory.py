"""reuse_freed_memory: freed blocks stay in the process, so that the next step faults no pages in."""

import platform
import subprocess
import sys

import pytest

from tests.helpers import REPO

# A fresh process per measurement: the setting lasts for the life of the process that makes it.
FAULTS_OF_REPEATED_BLOCKS = """
import resource, sys, torch
from seqexp.app.host_memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "on" else None
def step():
    block = torch.ones(16 * 2**20)  # 64 MiB, written through: every page is touched
    del block
for _ in range(10):  # glibc's heap takes a few blocks to settle into its steady layout
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def minor_faults(setting: str) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_REPEATED_BLOCKS, setting],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    applied, faults = result.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_blocks_freed_and_allocated_again_are_not_faulted_in_again():
    applied, kept = minor_faults("on")
    _, returned = minor_faults("off")
    pages = 64 * 2**20 // 4096
    assert applied == "True"
    # glibc's defaults give each 64 MiB block a new mapping: 20 blocks, 20 x its pages faulted in.
    assert returned > 15 * pages, returned
    assert kept < 4 * pages, (kept, returned)
