"""Keep the host memory a training step frees, so that the next step reuses it (``reuse_freed_memory``).

glibc's malloc gives every block above its mmap threshold (128 KiB, rising with use to at most 32 MiB)
its own mapping and unmaps it when it is freed, and it returns the top of its heap to the kernel once
128 KiB of it is free. A recurrent core's activations for a whole window are such blocks: a GRU's gates
for a batch of 64 rows of 150 steps at width 512 take 59 MB. So each step maps them again, and the
kernel zeroes and faults in every page of them: for experiment=tinyshakespeare_cpu_fp32's model, 3.6 million
minor page faults and 7.4 s of system time in 130 steps. Serving all blocks from the heap and keeping
it cut that to 0.22 million and 1.1 s, for 11 % more tokens/s, with the same peak resident size
(scripts/bench_host_memory.py on 2 cores). Over the preset's 10 minutes the peak was 1.03 and 1.04 GB
in two runs, against 0.92 to 1.03 GB in runs of its variants without it.
"""

import ctypes
import platform

# mallopt's parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# mallopt takes a C int: the largest free heap top (2 GiB) that is kept rather than trimmed.
_KEEP_UP_TO_BYTES = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Make this process's malloc keep freed blocks for reuse; False where the C library is not glibc.

    It lasts for the life of the process, which is one run (each DDP rank sets it in its own process).
    """
    if platform.libc_ver()[0] != "glibc":
        return False  # musl and others have other allocators, and mallopt means nothing there
    libc = ctypes.CDLL(None)  # the C library this Python is linked with
    no_mmap = libc.mallopt(_M_MMAP_MAX, 0)
    no_trim = libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO_BYTES)
    return bool(no_mmap and no_trim)  # mallopt returns 1 on success
