"""The figures room: drawing only (matplotlib, imported on first use). Learned-vs-true graph
pictures and their DOT / networkx exports, regret curves, and the small helpers every figure
shares. It knows no run directory or config."""
