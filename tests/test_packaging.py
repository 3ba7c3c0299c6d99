"""Building the package leaves the checkout as it was: no build/ and no causalrl.egg-info/ after a
non-editable build (docs/architecture.md; the build backend is causalrl/_build_backend.py)."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".hypothesis", ".ruff_cache")


def _tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if "__pycache__" not in path.parts}


def test_pip_wheel_of_a_checkout_leaves_no_build_output_in_it(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, symlinks=True, ignore=_NOT_COPIED)
    before = _tree(checkout)
    # --no-build-isolation: the test's own setuptools (no download); the hooks are the same either way
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "-w", str(tmp_path / "wheels"), "--no-deps",
                           "--no-build-isolation", "-q"], cwd=checkout, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PIP_NO_INPUT": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert _tree(checkout) == before  # was: build/ and causalrl.egg-info/ beside pyproject.toml
    [wheel] = (tmp_path / "wheels").glob("causalrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "causalrl/envs/render.py" in names and "causalrl/agents/base.py" in names  # the links, followed
    assert not any(name.startswith(("envs/", "agents/", "tests/")) for name in names)
