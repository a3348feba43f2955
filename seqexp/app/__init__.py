"""Application plumbing shared by the entry points, one job per module: docs/design.md §1 names each
module and its job, §5 how they work together."""
