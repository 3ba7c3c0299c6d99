"""Loading pickled state without running code from the file.

A pickle names the functions it calls to rebuild objects; a planted one calls ``os.system``.
:func:`safe_load` unpickles with an allowlist of those names (plain containers, numpy arrays,
dtypes and random generators, plus what the caller adds) and refuses any other name before it
is called, with a one-line :class:`UnsafePickleError`. The same idea as
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import io
import pickle

__all__ = ["UnsafePickleError", "safe_load", "NUMPY_GLOBALS"]

#: what numpy arrays, scalars, dtypes and Generators (PCG64 and friends) pickle to
NUMPY_GLOBALS = frozenset(
    (module, name)
    for prefix in ("numpy._core", "numpy.core")
    for module, name in [
        (f"{prefix}.multiarray", "_reconstruct"), (f"{prefix}.multiarray", "scalar"),
        (f"{prefix}.numeric", "_frombuffer"),
    ]
) | frozenset([
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pcg64", "PCG64"), ("numpy.random._pcg64", "PCG64DXSM"), ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._philox", "Philox"), ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("collections", "OrderedDict"), ("collections", "deque"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "complex"), ("builtins", "slice"), ("builtins", "range"), ("builtins", "bytearray"),
])


class UnsafePickleError(ValueError):
    """A pickle names a function or class outside the allowlist; nothing from it was run."""


class _Restricted(pickle.Unpickler):
    def __init__(self, file, allowed: frozenset, class_packages: tuple[str, ...], persistent_load=None):
        super().__init__(file)
        self._allowed = allowed
        self._packages = class_packages
        if persistent_load is not None:
            self.persistent_load = persistent_load

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        if any(module == package or module.startswith(package + ".") for package in self._packages):
            # classes (never functions) of the project's own packages: rebuilt from their fields
            found = getattr(importlib.import_module(module), name, None) if "." not in name else None
            if isinstance(found, type):
                return found
        raise UnsafePickleError(f"refused to load {module}.{name}: not an allowed type of saved state "
                                "(a pickle that runs code?); nothing from it was run")


def safe_load(file, allowed=frozenset(), class_packages: tuple[str, ...] = (), persistent_load=None):
    """Unpickle ``file`` (a binary file or bytes) allowing only :data:`NUMPY_GLOBALS`, the
    ``(module, name)`` pairs in ``allowed`` and classes defined under ``class_packages``."""
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    return _Restricted(file, NUMPY_GLOBALS | frozenset(allowed), tuple(class_packages), persistent_load).load()
