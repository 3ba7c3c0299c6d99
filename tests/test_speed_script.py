"""benchmarks/speed.py runs every part end to end on tiny budgets: each comparison's rows, ratios and
target verdicts reach the table and the JSON (docs/batched.md "Speed"). Timings at these budgets
mean nothing; this only keeps the script from breaking between measurements (an agent that refuses
its arguments, a part that crashes after minutes of another part's work). About 40 s, most of it
RLIF's compiled critics (less when torch's compile cache is warm)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"
ROWS = {
    "rlif": ["sac", "rlif", "rlif (compiled critics)", "rlif (2 critics, no LayerNorm)"],
    "cip": ["sac", "cip-delay1", "sac-delay1 (CIP's backbone)", "cip-delay1 (SB3's SACPolicy)", "sac-delayed", "cip",
            "cip (empowerment off)", "cip (discovery off)"],
    "seeds (64, 64)": ["sb3-sac (1 seed)", "batched K=5", "batched K=10"],
    "seeds (256, 256)": ["sb3-sac (1 seed)", "batched K=10"],
}


def test_speed_script_runs_every_part(tmp_path):
    command = [sys.executable, str(SCRIPT), "--steps", "4", "--chunk", "2", "--warmup", "101", "--large-steps", "2",
               "--net-arch", "8", "8", "--cip-steps", "12", "--cip-chunk", "6"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "benchmarks" / "speed.json").read_text())
    assert set(results["parts"]) == set(ROWS)
    for part, names in ROWS.items():
        measured = results["parts"][part]
        assert list(measured["ms_per_step"]) == names
        assert all(value > 0 for value in measured["ms_per_step"].values())
        assert all(measured["ratio"][measured["baseline"][name]] == 1.0 for name in names)
        assert measured["warmup_seconds"].keys() == set(names)
        for name in names:
            assert f"| {part} | {name} |" in result.stdout
    verdicts = [line for line in result.stdout.splitlines() if "met |" in line]
    # rlif eager and compiled, cip-delay1, batched K=10 at (64, 64): four targets
    assert len(verdicts) == 4, result.stdout
    gains = results["parts"]["seeds (64, 64)"]["seeds_per_second_gain"]
    ratio = results["parts"]["seeds (64, 64)"]["ratio"]["batched K=10"]
    assert gains["batched K=10"] == 10 / ratio
