"""The build backend of ``pip install <checkout>``: setuptools, run in a temporary copy of the
source tree, so that building leaves nothing behind in the checkout.

Since pip 21.3 builds in place, and setuptools writes its ``build/`` folder and
``causalrl.egg-info/`` beside ``pyproject.toml`` for every non-editable build (``pip install .``,
``pip wheel .``, ``python -m build``); it has no setting that moves them (``build_base`` and
``egg_base`` are paths inside the project). These hooks (PEP 517, ``backend-path`` in
pyproject.toml) copy the tree, without ``.git``, virtual environments, ``runs/`` and old build
output, into a temporary folder, call setuptools' own hooks there, and delete the copy, as pip did
before 21.3. Symbolic links are copied as links (``causalrl/envs`` -> ``../envs`` stays valid in
the copy). Editable installs (``pip install -e .``) build in place as before: their metadata must
live beside the source.

Only the build imports this module (it needs setuptools, which causalrl does not need at run time).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from setuptools import build_meta as _setuptools

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

#: never copied: version control, environments, run output and earlier build output
_SKIPPED = shutil.ignore_patterns(".git", ".venv", "venv", ".tox", ".nox", "runs", "build", "dist", "*.egg-info",
                                  "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache")

# editable installs keep setuptools' in-place hooks
build_editable = _setuptools.build_editable
get_requires_for_build_editable = _setuptools.get_requires_for_build_editable
prepare_metadata_for_build_editable = _setuptools.prepare_metadata_for_build_editable


@contextlib.contextmanager
def _in_a_copy():
    """Work in a temporary copy of the source tree (the current folder), deleted afterwards."""
    source = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="causalrl-build-") as folder:
        copy = Path(folder) / source.name
        shutil.copytree(source, copy, symlinks=True, ignore=_SKIPPED)
        os.chdir(copy)
        try:
            yield
        finally:
            os.chdir(source)


def _absolute(path):
    return None if path is None else os.path.abspath(path)


def get_requires_for_build_wheel(config_settings=None):
    with _in_a_copy():
        return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    with _in_a_copy():
        return _setuptools.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    metadata_directory = _absolute(metadata_directory)
    with _in_a_copy():
        return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel_directory, metadata_directory = _absolute(wheel_directory), _absolute(metadata_directory)
    with _in_a_copy():
        return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    sdist_directory = _absolute(sdist_directory)
    with _in_a_copy():
        return _setuptools.build_sdist(sdist_directory, config_settings)
