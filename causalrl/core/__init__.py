"""The numpy kernel: graphs, linear SEMs, statistics, mutual information, structure types and
metrics, the assumptions a world declares to its agents, protocols shared by worlds and
learners, and registries (mechanism only). It imports no torch, Stable-Baselines3, matplotlib
or gymnasium."""
