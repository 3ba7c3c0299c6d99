"""Mutation check of the RLIF, DAgger and HG-DAgger tests: each mutant is a wrong implementation
of one step of docs/rlif.md (a)-(d) or of the judge's calibration and check (docs/rlif.md (c),
"delta: auto"); every one must make at least one fast test fail.

Each mutant is a list of exact text replacements in one file (agents/rlif.py, agents/dagger.py,
envs/intervention.py or envs/calibration.py). benchmarks/mutation.py copies the package and tests into a
scratch folder (the working tree is never touched), applies one mutant there, and runs the fast
judge tests (tests/test_rlif_judge.py, whose tests name the mutants they kill) with ``-x`` from
that folder (so that folder's ``causalrl`` is the one imported). A mutant is *killed* when pytest
fails; the table names the first failing test.

    python benchmarks/rlif_mutants.py [--only NAME ...] [--timeout 900]

Writes runs/benchmarks/rlif_mutants/results.json. Exit status 1 when a mutant survives or a
replacement no longer matches the source (the mutant list must follow the code).
"""

from __future__ import annotations

# benchmarks/mutation.py: the scratch copy, the test run and the table
from mutation import main

TESTS = ["tests/test_rlif_judge.py"]

#: name -> (what it breaks, file, [(original text, mutated text), ...])
MUTANTS = {
    "hg-dagger-learner-label": ("HG-DAgger trained on the learner's own action on intervened steps", "agents/dagger.py", [
        ('if self.train_on == "all" or info["intervened"]:\n            return executed',
         'if self.train_on == "all" or info["intervened"]:\n            return memo["learner"]'),
    ]),
    "hg-dagger-trains-on-all": ("HG-DAgger (textbook) adds the learner's steps too", "agents/dagger.py", [
        ('if self.train_on == "all" or info["intervened"]:', "if True:"),
    ]),
    "dagger-no-aggregation": ("DAgger trains on the newest samples only (no aggregate)", "agents/dagger.py", [
        ("self._observations = [np.concatenate(self._observations)]\n        self._labels = [np.concatenate(self._labels)]",
         "self._observations = self._observations[-1:]\n        self._labels = self._labels[-1:]"),
    ]),
    "dagger-beta-dropped": ("DAgger never executes the expert (beta ignored)", "agents/dagger.py", [
        ("execute_expert = self._rng.random() < self.beta", "execute_expert = False"),
    ]),
    "rlif-no-minus-one": ("RLIF reward not set to -1 on intervention", "agents/rlif.py", [
        ("self._add_transition(pending, -1.0 if takeover else 0.0)", "self._add_transition(pending, 0.0)"),
    ]),
    "rlif-wrong-step": ("RLIF's -1 on the last expert step of a block instead of the learner step before it",
                        "agents/rlif.py", [
        ('takeover = bool(info.get("intervention_started", False)) and not pending["intervened"]',
         'takeover = pending["intervened"] and not transition["intervened"]'),
    ]),
    "rlif-learner-action-on-expert-steps": ("RLIF stores the learner's proposed action on expert steps",
                                            "agents/rlif.py", [
        ("if executed is not None:  # docs/rlif.md (b) 3", "if False:  # docs/rlif.md (b) 3"),
    ]),
    "noise-floor-dropped": ("takeover probability 1 / 0 instead of beta / 1 - beta", "envs/intervention.py", [
        ("probability = self.beta if bad else 1 - self.beta", "probability = 1.0 if bad else 0.0"),
    ]),
    "delta-sign-flipped": ("value test Q(s, a) < Q(s, a_ref) + delta", "envs/intervention.py", [
        ("return bool(q_value < q_reference - self.delta)", "return bool(q_value < q_reference + self.delta)"),
    ]),
    "calibration-seed-zero": ("delta calibrated on seed 0 for every run", "envs/intervention.py", [
        ("seed=int(seed), sample_reference=self.sample_reference,", "seed=0, sample_reference=self.sample_reference,"),
    ]),
    "judge-check-dropped": ("a judge that cannot tell the acting expert from itself is not refused",
                            "envs/intervention.py", [
        ('if failure is not None and not settings["force"]:', "if False:"),
    ]),
    "calibration-uniform": ("delta from uniform actions' gaps whatever the method (the blind judge)",
                            "envs/calibration.py", [
        ("chosen = gaps[method]", 'chosen = gaps["uniform"]'),
    ]),
}


if __name__ == "__main__":
    main(__doc__.splitlines()[0], MUTANTS, TESTS, "runs/benchmarks/rlif_mutants")
