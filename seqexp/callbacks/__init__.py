"""Lightning callbacks: what a run shows in TensorBoard, and how it saves, stops and reports its progress
(docs/design.md §1 names each one)."""
