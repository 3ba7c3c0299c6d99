"""The report's "causal parts" table: how often the discovery rounds of CIP-family runs (CIP, ACE)
gave the learner something to act on. It reads each run's ``discovery.jsonl`` (one record per
discovery round; docs/cip.md b.1) and says, per agent and env, in how many rounds the action
weights were non-uniform and augmentation had a block to swap, and whether the final weights
agree across seeds. A return table alone cannot tell a causal part that helps from one that
never acted (docs/cip.md (d)).
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from causalrl.experiment.analysis.runs import Group
from causalrl.experiment.run.history import DISCOVERY_FILE

__all__ = ["NON_UNIFORM_RATIO", "causal_part_rows", "causal_parts_markdown"]

#: action weights count as non-uniform in a round when max/min reaches this ratio
NON_UNIFORM_RATIO = 1.5


def _rounds(run_dir: Path) -> list[dict]:
    path = run_dir / DISCOVERY_FILE
    if not path.is_file():
        return []
    rounds = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill: the rounds before it still count
            break
        if isinstance(record, dict) and isinstance(record.get("action_weights"), list):
            rounds.append(record)
    return rounds


def _rank_agreement(final_weights: list[np.ndarray]) -> float | None:
    """Mean pairwise Spearman rank correlation of the seeds' final action weights; None with one
    action, or fewer than two seeds whose weights are not all equal (no ranking to compare)."""
    ranked = [w for w in final_weights if w.size >= 2 and np.ptp(w) > 0]
    pairs = [float(spearmanr(a, b)[0]) for a, b in combinations(ranked, 2)]
    return float(np.mean(pairs)) if pairs else None


def causal_part_rows(groups: list[Group]) -> list[dict]:
    """One row per (agent, env) group whose complete runs logged discovery rounds."""
    rows = []
    for group in groups:
        per_run = [rounds for rounds in (_rounds(run.path) for run in group.ok) if rounds]
        if not per_run:
            continue
        rounds = [record for run_rounds in per_run for record in run_rounds]
        n_actions = len(rounds[-1]["action_weights"])
        ratios = np.array([float(r.get("action_weight_ratio") or 1.0) for r in rounds])
        swapping = [r for r in rounds if r.get("swapping")]
        swapped_states = [sum(len(block["states"]) for block in r["swapped_blocks"]) for r in swapping]
        final = [np.asarray(run_rounds[-1]["action_weights"], dtype=float) for run_rounds in per_run]
        rows.append({"agent": group.agent, "env": group.env, "runs": len(per_run), "rounds": len(rounds),
                     "actions": n_actions, "non_uniform_rounds": int(np.sum(ratios >= NON_UNIFORM_RATIO)),
                     "median_weight_ratio": float(np.median(ratios)), "augmentation_rounds": len(swapping),
                     "mean_swapped_states": float(np.mean(swapped_states)) if swapped_states else 0.0,
                     "final_weights_mean": np.mean(final, axis=0).round(3).tolist(),
                     "rank_agreement": _rank_agreement(final)})
    return rows


def causal_parts_markdown(rows: list[dict]) -> list[str]:
    """The report.md section of :func:`causal_part_rows` (nothing when no run discovered)."""
    if not rows:
        return []
    md = ["## Causal parts (discovery rounds)", "",
          f"Per agent and env, over every discovery round of every complete seed (`discovery.jsonl`): rounds "
          f"whose action weights were non-uniform (max/min >= {NON_UNIFORM_RATIO}; impossible with one action), "
          "the median max/min, rounds in which the agent swapped a reward-free block (counterfactual augmentation; "
          "never for agents without it, such as ACE) and how many state dims on average, the "
          "final action weights averaged over seeds, and their rank agreement across seeds (mean pairwise "
          "Spearman correlation; 1 = every seed ranks the actions alike). docs/cip.md (d).", "",
          "| agent | env | seeds | non-uniform weights | median max/min | augmentation on | swapped state dims "
          "| final weights (mean) | rank agreement |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        share = (f"{row['non_uniform_rounds']}/{row['rounds']}" if row["actions"] > 1
                 else f"n/a (1 action, {row['rounds']} rounds)")
        agreement = "n/a" if row["rank_agreement"] is None else f"{row['rank_agreement']:.2f}"
        weights = ", ".join(f"{w:.2f}" for w in row["final_weights_mean"])
        md.append(f"| {row['agent']} | {row['env']} | {row['runs']} | {share} | {row['median_weight_ratio']:.2f} | "
                  f"{row['augmentation_rounds']}/{row['rounds']} | {row['mean_swapped_states']:.1f} | {weights} | "
                  f"{agreement} |")
    return md + [""]
