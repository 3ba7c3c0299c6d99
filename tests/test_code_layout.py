"""The size and style limits of docs/architecture.md, checked on the source tree: no module of
the experiment layer over 450 lines, no function over 100 lines (docstrings excluded), one
docstring style (Stable-Baselines3's ``:param name:``), and no citation of files or issue
numbers that a user of the repository does not have."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = [ROOT / "causalrl" / "core", ROOT / "causalrl" / "experiment", ROOT / "causalrl" / "cli.py",
        ROOT / "causalrl" / "api.py", ROOT / "causalrl" / "__init__.py", ROOT / "envs", ROOT / "agents"]
MODULE_LIMIT, FUNCTION_LIMIT = 450, 100


def _python_files(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in ([root] if root.is_file() else root.rglob("*.py")))


def _lines_without_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.relative_to(root)}:{node.lineno} {node.name} ({_lines_without_docstring(node)} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _lines_without_docstring(node) > FUNCTION_LIMIT]


def test_no_experiment_module_is_over_450_lines():
    too_long = [f"{path.relative_to(ROOT)} ({count} lines)" for path in _python_files(ROOT / "causalrl" / "experiment")
                if (count := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LIMIT]
    assert not too_long, f"split these into rooms or modules: {too_long}"


def test_no_function_is_over_100_lines():
    found = [entry for path in _python_files(*CODE) for entry in long_functions(path)]
    assert not found, f"functions over {FUNCTION_LIMIT} lines (docstrings excluded): {found}"


def test_the_size_check_counts_code_not_docstrings(tmp_path):
    def source(statements: int) -> str:
        body = "\n".join(f"    x{i} = {i}" for i in range(statements))
        return f'def f():\n    """a docstring\n    of three\n    lines"""\n{body}\n'

    (tmp_path / "at_limit.py").write_text(source(FUNCTION_LIMIT - 1))  # + the def line = 100
    (tmp_path / "over.py").write_text(source(FUNCTION_LIMIT))
    assert long_functions(tmp_path / "at_limit.py", tmp_path) == []
    assert long_functions(tmp_path / "over.py", tmp_path) == ["over.py:1 f (101 lines)"]


def test_one_docstring_style():
    google = re.compile(r'^\s+(Args|Arguments|Returns|Raises):\s*$', re.MULTILINE)
    found = [str(path.relative_to(ROOT)) for path in _python_files(*CODE) if google.search(path.read_text(encoding="utf-8"))]
    assert not found, f"Google-style Args:/Returns: sections (write :param name: ... as Stable-Baselines3 does): {found}"


@pytest.mark.parametrize("folder", ["causalrl", "envs", "agents", "benchmarks", "examples", "docs"])
def test_nothing_cites_files_or_issues_users_do_not_have(folder):
    outside = re.compile(r"shared/(specs|reviews)|/work/|\bDESIGN\.md\b|\b[Ii]ssue #?\d+\b")
    found = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / folder).rglob("*"))
             if path.suffix in (".py", ".md", ".yaml") and path.is_file()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert not found, f"cite the project's docs/ pages or papers instead: {found}"
