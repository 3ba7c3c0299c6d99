"""The batch room: many runs from one spec. Sweeps (a base config x overrides x seeds) with
their trial ledger and execution backends (local processes, Ray), Optuna tuning, and the
benchmark suites of ``causalrl bench``. It calls the run room's public functions only."""
