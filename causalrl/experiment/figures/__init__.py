"""The figures room: drawing only (matplotlib, imported on first use). Learned-vs-true graph
pictures and their DOT / networkx exports (``graphs``), regret curves (``curves``), forest plots
of differences with their intervals (``forest``), and the small helpers every figure shares
(``style``). It knows no run directory or config."""
