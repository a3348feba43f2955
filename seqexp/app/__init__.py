"""Application plumbing shared by the entry points, one job per module (docs/design.md §5):

- ``cli``: user mistakes end as one ``error:`` line and exit status 2;
- ``config_checks``: value checks of a composed config, before torch is imported;
- ``run_status``: ``<run dir>/status.json``;
- ``sweep_setup``: the Hydra callback that checks a search space before the first trial;
- ``hydra_ddp``: DDP ranks that re-run the job's saved config;
- ``devices``: a device name from the command line, checked against this machine.
"""
