"""One identity per module (docs/architecture.md, "Where things live").

The top-level folders ``envs/`` and ``agents/`` are reached through the links ``causalrl/envs``
and ``causalrl/agents``. Importing them under their folder names would give every class and
registration a second copy, so it fails with one line; a checkout made without symbolic links
(7-byte text files in place of the links) fails at ``import causalrl`` with one line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path, isolated: bool = False) -> subprocess.CompletedProcess:
    flags = ["-I"] if isolated else []
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _error_line(completed: subprocess.CompletedProcess) -> str:
    assert completed.returncode != 0, completed.stdout
    return completed.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("code, package", [
    ("import envs", "causalrl.envs"),
    ("import agents", "causalrl.agents"),
    ("import envs.bandits", "causalrl.envs"),
    # the stray import after the real one: before, the registry raised "'ucb' is already registered"
    ("import causalrl.agents; import agents", "causalrl.agents"),
])
def test_the_top_level_folders_do_not_import_under_their_own_names(code, package):
    line = _error_line(_python(code, cwd=ROOT))  # the repository root is sys.path[0]
    assert line.startswith("ImportError: ") and f"import {package} instead" in line
    assert line.endswith("docs/architecture.md)")  # the whole message is this one line


def _copy_package(destination: Path) -> Path:
    """A copy of causalrl/ under ``destination`` whose links point at this checkout's envs/ and
    agents/ (the copied relative links would dangle)."""
    package = destination / "causalrl"
    shutil.copytree(ROOT / "causalrl", package, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("envs", "agents"):
        (package / name).unlink()
        try:
            os.symlink(ROOT / name, package / name, target_is_directory=True)
        except OSError:
            pytest.skip("this file system cannot make symbolic links")
    return package


def _import_copy(checkout: Path, code: str = "") -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no user site, no current folder; the copy goes first on sys.path, ahead
    # of the venv's editable install (a finder consulted after sys.path)
    return _python(f"import sys; sys.path.insert(0, {str(checkout)!r}); import causalrl; {code}", cwd=checkout,
                   isolated=True)


def test_the_copy_is_what_the_subprocess_imports(tmp_path):
    package = _copy_package(tmp_path)
    completed = _import_copy(tmp_path, "import causalrl.envs; print(causalrl.__file__)")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str(package / "__init__.py")


def test_a_checkout_without_symbolic_links_fails_at_import_with_one_line(tmp_path):
    # what `git -c core.symlinks=false clone` writes: each link becomes a text file holding its target
    package = _copy_package(tmp_path)
    for name in ("envs", "agents"):
        (package / name).unlink()
        (package / name).write_text(f"../{name}")
    assert (package / "envs").stat().st_size == 7
    completed = _import_copy(tmp_path)
    line = _error_line(completed)
    assert line.startswith(f"ImportError: {package / 'envs'} is a plain file, not a link to ../envs: ")
    assert "core.symlinks=false" in line and "git -c core.symlinks=true clone" in line
    assert line.endswith("or install the wheel")  # the whole message is this one line


def test_a_missing_subpackage_fails_at_import_with_one_line(tmp_path):
    package = _copy_package(tmp_path)
    (package / "agents").unlink()
    line = _error_line(_import_copy(tmp_path))
    assert line.startswith(f"ImportError: {package / 'agents'} is missing")


def test_import_causalrl_stays_light():
    heavy = "('torch', 'numpy', 'gymnasium')"
    completed = _python(f"import sys, causalrl; print(sorted(m for m in {heavy} if m in sys.modules))", cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"
