"""Which process of a run this is, and whether the world a cluster started matches the config.

A run's processes are started in one of two ways. Lightning's launcher starts the DDP ranks of one node
itself, from the job's saved config (seqexp/app/hydra_ddp.py). A cluster starts the others with the
user's own command line: another node's (``NODE_RANK`` with ``MASTER_ADDR`` and ``MASTER_PORT``),
torchrun's workers (``RANK``, ``WORLD_SIZE``) and SLURM's tasks (``SLURM_PROCID``). Only the first process
of all claims the run's folder, records its status and holds it.
"""

import os

from omegaconf import DictConfig

from seqexp.errors import ConfigError

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def launched_process() -> bool:
    """False in every process of a multi-process run but its first: the job's status, its folder and
    its resume checks are the first process's."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def started_by_lightning() -> bool:
    """Whether this process is a DDP rank that Lightning's launcher started on its node (its command
    line is already the job's saved config), rather than one a cluster started with the user's."""
    return "LOCAL_RANK" in os.environ and "TORCHELASTIC_RUN_ID" not in os.environ


def process_name_suffix() -> str:
    """What tells this process's log from the first process's in a run that a cluster started:
    ``_node1``, ``_node1_rank1``; empty for the first process."""
    node = next((os.environ[n] for n in ("NODE_RANK", "GROUP_RANK", "SLURM_NODEID") if n in os.environ), "0")
    rank = os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "0"
    return (f"_node{node}" if node != "0" else "") + (f"_rank{rank}" if rank != "0" else "")


def check_world(trainer: DictConfig) -> None:
    """Refuse in one line, before anything is written, a world that ``trainer.num_nodes`` x
    ``trainer.devices`` does not describe: torchrun's count of processes, or several nodes with no
    address to meet at (each would wait for the others until the process group's 30-minute timeout).
    Under SLURM, Lightning's own check of the tasks per node applies."""
    nodes, devices = trainer.get("num_nodes", 1), trainer.get("devices", "auto")
    if "TORCHELASTIC_RUN_ID" in os.environ:
        started = int(os.environ["WORLD_SIZE"])
        if isinstance(devices, int) and started != nodes * devices:
            raise ConfigError(
                f"trainer.num_nodes={nodes} x trainer.devices={devices} makes {nodes * devices} process(es), "
                f"but torchrun started {started}: make them agree with --nnodes x --nproc_per_node"
            )
    elif nodes > 1 and "MASTER_ADDR" not in os.environ and "SLURM_JOB_ID" not in os.environ:
        raise ConfigError(
            f"trainer.num_nodes={nodes}: start each node with MASTER_ADDR, MASTER_PORT and NODE_RANK set "
            "(README, Beyond one machine), or under torchrun or SLURM"
        )
