"""Loading pickled state without running code from the file.

A pickle names the functions it calls to rebuild objects; a planted one calls ``os.system``.
:func:`safe_load` unpickles with an allowlist of those names (plain containers, numpy arrays,
dtypes and random generators, plus what the caller adds) and refuses any other name before it
is called, with a one-line :class:`UnsafePickleError`. The same idea as
``torch.load(weights_only=True)``.

Stable-Baselines3's ``model.zip`` keeps its settings as JSON (``data``) in which every value
that JSON cannot hold is a base64 cloudpickle (spaces, the policy class, numpy arrays, ...).
:func:`sb3_custom_objects` rebuilds each of those without unpickling it with SB3's loader: a
class reference is read from the pickle's opcodes (nothing is executed) and must be a subclass
the caller names, every other value goes through :func:`safe_load` with :data:`SB3_DATA_GLOBALS`.
SB3's ``load(..., custom_objects=...)`` then takes them instead of unpickling (its tensors load
with ``torch.load(weights_only=True)``). Files a user trusts may be loaded by SB3's own loader
instead, inside :func:`trusting` (docs/runner.md, "Pickles").
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import importlib
import io
import json
import pickle
import pickletools
import zipfile

__all__ = ["UnsafePickleError", "safe_load", "NUMPY_GLOBALS", "SB3_DATA_GLOBALS", "SB3_SPACE_PACKAGES",
           "bare_reference", "sb3_custom_objects", "read_sb3_data", "trusting", "models_trusted"]

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


#: what SB3's pickled ``data`` entries hold besides numpy values and spaces: its train frequency
#: (a named tuple and an enum) and learning-rate schedules (plain classes holding a number)
SB3_DATA_GLOBALS = frozenset([
    ("stable_baselines3.common.type_aliases", "TrainFreq"),
    ("stable_baselines3.common.type_aliases", "TrainFrequencyUnit"),
    ("stable_baselines3.common.utils", "FloatSchedule"),
    ("stable_baselines3.common.utils", "ConstantSchedule"),
    ("stable_baselines3.common.utils", "LinearSchedule"),
])
#: the packages whose classes a saved space may be (rebuilt from their fields)
SB3_SPACE_PACKAGES = ("gymnasium.spaces",)
#: the largest ``data`` member of an SB3 zip read (SB3 writes a few KiB)
MAX_SB3_DATA_BYTES = 16 * 1024 * 1024
#: opcodes of a pickle that only names a class (protocol header, two strings, the lookup)
_REFERENCE_OPCODES = frozenset(["PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "MEMOIZE", "PUT",
                                "BINPUT", "STACK_GLOBAL", "GLOBAL", "STOP"])
_TRUSTED = contextvars.ContextVar("causalrl_trust_models", default=False)


def _within(module: str, packages) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


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
        if _within(module, self._packages):
            # classes (never functions) defined in the allowed packages: rebuilt from their fields.
            # A class merely imported into an allowed module (``pathlib.Path`` in a causalrl
            # module) is refused: its own module must be allowed too.
            found = getattr(importlib.import_module(module), name, None) if "." not in name else None
            if isinstance(found, type) and _within(getattr(found, "__module__", ""), self._packages):
                return found
        raise UnsafePickleError(f"refused to load {module}.{name}: not an allowed type of saved state "
                                "(a pickle that runs code?); nothing from it was run")


def safe_load(file, allowed=frozenset(), class_packages: tuple[str, ...] = (), persistent_load=None):
    """Unpickle ``file`` (a binary file or bytes) allowing only :data:`NUMPY_GLOBALS`, the
    ``(module, name)`` pairs in ``allowed`` and classes defined under ``class_packages``."""
    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    return _Restricted(file, NUMPY_GLOBALS | frozenset(allowed), tuple(class_packages), persistent_load).load()


@contextlib.contextmanager
def trusting(trusted: bool = True):
    """Within this block, model files named by the user load with their own (unpickling) loader
    when ``trusted``: the ``trust_models`` setting of a config or ``--trust-models`` (README,
    "Pickles"). Never set from a file that is itself being loaded."""
    token = _TRUSTED.set(bool(trusted))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def models_trusted() -> bool:
    """Whether the caller is inside :func:`trusting` (``trusted=True``)."""
    return _TRUSTED.get()


def bare_reference(data: bytes) -> tuple[str, str] | None:
    """``(module, name)`` when the pickle ``data`` does nothing but name one global (how a class
    is pickled by reference); None otherwise. Read from the opcodes: nothing is executed."""
    strings, names = [], []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name not in _REFERENCE_OPCODES:
                return None
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(argument)
            elif opcode.name == "STACK_GLOBAL":
                names.append(tuple(strings[-2:]))
            elif opcode.name == "GLOBAL":
                names.append(tuple(argument.split(" ", 1)))
    except (ValueError, TypeError, pickle.UnpicklingError, IndexError):
        return None
    return names[0] if len(names) == 1 and len(names[0]) == 2 else None


def read_sb3_data(path) -> dict:
    """The JSON ``data`` member of an SB3 ``model.zip`` (its settings), size-capped; a one-line
    ``ValueError`` naming the file otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("data")
            if info.file_size > MAX_SB3_DATA_BYTES:
                raise ValueError(f"{path}: its data member is {info.file_size} bytes, more than an SB3 model holds")
            data = json.loads(archive.read(info).decode("utf-8"))
    except KeyError:
        raise ValueError(f"{path}: not a Stable-Baselines3 model (no data member); give a model.zip written by "
                         "an SB3 agent's save()") from None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, RecursionError, EOFError) as error:
        raise ValueError(f"{path}: not a readable Stable-Baselines3 model.zip ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:160]})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the data member is not JSON ({error.msg} at char {error.pos})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the data member is not a mapping of settings")
    return data


def sb3_custom_objects(path, references: dict, packages: tuple[str, ...]) -> dict:
    """Every pickled entry of an SB3 ``model.zip``'s ``data``, rebuilt without running code from
    the file, as ``custom_objects`` for SB3's ``load``.

    ``references`` maps the keys that hold a class (``policy_class``, ``replay_buffer_class``) to
    the base class it must subclass; such an entry must be a bare reference
    (:func:`bare_reference`) to a class of a module under ``packages`` (no other module is even
    imported). Every other entry is read by :func:`safe_load` with numpy
    types, :data:`SB3_DATA_GLOBALS` and the classes of :data:`SB3_SPACE_PACKAGES`. Anything else
    is an :class:`UnsafePickleError` naming the file and the key."""
    objects = {}
    for key, entry in read_sb3_data(path).items():
        if not (isinstance(entry, dict) and ":serialized:" in entry):
            continue
        try:
            raw = base64.b64decode(str(entry[":serialized:"]).encode(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{path}: data entry {key!r} is not base64; the file is damaged") from None
        if key in references:
            objects[key] = _referenced_class(path, key, raw, references[key], packages)
            continue
        try:
            objects[key] = safe_load(raw, SB3_DATA_GLOBALS, SB3_SPACE_PACKAGES)
        except UnsafePickleError as error:
            raise UnsafePickleError(f"{path}: data entry {key!r}: {error}; if you trust this file, load it with "
                                    "trust_models: true (README, Pickles)") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                MemoryError, RecursionError, OverflowError) as error:
            raise ValueError(f"{path}: data entry {key!r} is damaged ({type(error).__name__}: "
                             f"{' '.join(str(error).split())[:120]})") from None
    return objects


def _referenced_class(path, key: str, raw: bytes, base: type, packages: tuple[str, ...]) -> type:
    reference = bare_reference(raw)
    if reference is None:
        raise UnsafePickleError(f"{path}: data entry {key!r} is not a plain class reference (a pickle that runs "
                                "code?); nothing from it was run")
    module, name = reference
    if not _within(module, packages):
        raise UnsafePickleError(f"{path}: data entry {key!r} names {module}.{name}, outside {', '.join(packages)}; "
                                "nothing from it was run (if you trust this file: trust_models: true, README, Pickles)")
    try:
        found = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError, TypeError):
        raise ValueError(f"{path}: data entry {key!r} names {module}.{name}, which cannot be imported here; "
                         "install the package that defines it") from None
    if not (isinstance(found, type) and issubclass(found, base)):
        raise UnsafePickleError(f"{path}: data entry {key!r} names {module}.{name}, not a {base.__name__} "
                                "subclass; nothing from it was run")
    return found
