"""Mutation check of CSL-UCB's tests: each mutant is a wrong implementation of one step of
docs/csl-ucb.md (b)/(c); every one must make at least one fast test fail.

Each mutant is a list of exact text replacements in agents/csl_ucb.py. benchmarks/mutation.py copies
the package and tests into a scratch folder (the working tree is never touched), applies one mutant
there, and runs the fast CSL-UCB and bandit-agent tests with ``-x`` from that folder (so that
folder's ``causalrl`` is the one imported). A mutant is *killed* when pytest fails; the table
names the first failing test.

    python benchmarks/csl_ucb_mutants.py [--only NAME ...] [--timeout 900]

Writes runs/benchmarks/csl_ucb_mutants/results.json. Exit status 1 when a mutant survives or a
replacement no longer matches the source (the mutant list must follow the code).
"""

from __future__ import annotations

# benchmarks/mutation.py: the scratch copy, the test run and the table
from mutation import main

TARGET = "agents/csl_ucb.py"
TESTS = ["tests/test_csl_ucb.py", "tests/test_bandit_agents.py"]

#: name -> (what it breaks, [(original text, mutated text), ...])
MUTANTS = {
    "every-round": ("structure relearned and estimates/decisions refreshed every round (periods ignored)", [
        ("if relearn or t % self.graph_period == 0:", "if True:"),
        ("if relearn or t % self.estimate_period == 0:", "if True:"),
    ]),
    "no-bonus": ("UCB bonus removed: play argmax mu_hat (kappa = 0)", [
        ("best = int(np.argmax(self.estimated_rewards + self.kappa * self.uncertainties))",
         "best = int(np.argmax(self.estimated_rewards))"),
    ]),
    "kappa-zero": ("kappa_0 = 0", [
        ("self.kappa0 = self.kappa_factor * scale / largest_uncertainty if largest_uncertainty > 0 else 0.0",
         "self.kappa0 = 0.0"),
    ]),
    "kappa-constant": ("kappa held at kappa_0 (no cosine anneal)", [
        ("return self.kappa0 * (1.0 + math.cos(math.pi * progress)) / 2.0", "return self.kappa0"),
    ]),
    "kappa-learn-call": ("anneal horizon taken from the current learn() call", [
        ("progress = min((t - latest_reset) / max(self.horizon - latest_reset, 1), 1.0)",
         "progress = min((t - latest_reset) / max(self._total_timesteps - latest_reset, 1), 1.0)"),
    ]),
    "all-samples": ("first-n_max rule dropped: every sample kept", [
        ("collecting = self.sample_counts[mechanisms, nodes] < self.n_max",
         "collecting = np.ones(self.n_nodes, dtype=bool)"),
    ]),
    "penalty-zero": ("asymmetric penalty weight w set to 0 (default)", [
        ("k: int = 5, penalty_weight: float = 1.0, delta: float = 0.05, kappa_factor: float = 0.5,\n                 horizon",
         "k: int = 5, penalty_weight: float = 0.0, delta: float = 0.05, kappa_factor: float = 0.5,\n                 horizon"),
    ]),
    "penalty-term-dropped": ("-w log|b_hat| term dropped from the edge score", [
        ("return information + penalty", "return information"),
    ]),
    "detect-in-stationary": ("registered csl-ucb runs change detection in stationary worlds", [
        ('change_detection = "column" if declared is True else "none"', 'change_detection = "column"'),
    ]),
    "no-sample-rule": ("detector tests columns whatever their fit's sample count", [
        ("testable = window_full & (self.fit_counts >= needed)", "testable = window_full"),
    ]),
    "known-reference": ("detector always against the known sigma (fit reference dropped)", [
        ('if self.detection_reference == "fit":', "if False:"),
    ]),
}


if __name__ == "__main__":
    main(__doc__.splitlines()[0], {name: (what, TARGET, replacements) for name, (what, replacements) in MUTANTS.items()},
         TESTS, "runs/benchmarks/csl_ucb_mutants")
