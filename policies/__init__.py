"""Policy registry: the built-in policies (one module per proposed patch in
this folder) and third-party ones from the `pytest_tlbperf.policies` entry
point group.

A policy is named by its registered name, by `module:Class`, or by a file
path `path/to/my_rfc.py[:Class]` (so a reviewer can drop in a file that
mirrors a patch). `get()` returns the `Policy` subclass itself.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from pytest_tlbperf.errors import PolicyError
from pytest_tlbperf.policy import Policy, call_policy, describe_exception

__all__ = ["names", "get", "resolve", "builtin"]

ENTRY_POINT_GROUP = "pytest_tlbperf.policies"


def _policy_classes(module):
    """Policy subclasses defined in (not imported into) a module."""
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Policy) and obj is not Policy
            and obj.__module__ == module.__name__]


@functools.lru_cache(maxsize=None)
def builtin() -> dict:
    """name -> class for the modules in this package."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for cls in _policy_classes(module):
            found[cls.policy_name()] = cls
    return found


@functools.lru_cache(maxsize=None)
def _third_party() -> dict:
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a broken plugin is named
            raise PolicyError(f"policy entry point {ep.name!r} ({ep.value}) failed to "
                              f"import: {describe_exception(exc)}") from exc
        if not (inspect.isclass(cls) and issubclass(cls, Policy)):
            raise PolicyError(f"policy entry point {ep.name!r} ({ep.value}) is not a "
                              f"pytest_tlbperf.Policy subclass")
        found[ep.name] = cls
    return found


def _registry() -> dict:
    # looked up once per process: installed policies do not change under a run
    reg = dict(_third_party())
    reg.update(builtin())          # built-in names win: they are the contract
    return reg


def names() -> list:
    return sorted(_registry())


def get(name: str) -> type:
    """The Policy subclass registered as `name`."""
    reg = _registry()
    try:
        return reg[name]
    except KeyError:
        raise PolicyError(f"unknown policy {name!r}; registered policies are "
                          f"{', '.join(sorted(reg))} (or give module:Class or a .py path)"
                          ) from None


def _pick(classes, where, attr):
    if attr:
        for cls in classes:
            if cls.__name__ == attr:
                return cls
        raise PolicyError(f"{where} has no Policy subclass named {attr!r}; it defines "
                          f"{', '.join(c.__name__ for c in classes) or 'none'}")
    if len(classes) != 1:
        listed = ", ".join(c.__name__ for c in classes) or "none"
        raise PolicyError(f"{where} defines {len(classes)} Policy subclasses ({listed}); "
                          f"name one as {where}:Class")
    return classes[0]


def _load_file(path: Path, attr):
    if not path.exists():
        raise PolicyError(f"policy file {path} does not exist")
    if not path.is_file():
        raise PolicyError(f"policy file {path} is not a regular file")
    modname = f"tlbperf_user_policy_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except (PolicyError, KeyboardInterrupt):
        del sys.modules[modname]
        raise
    except BaseException as exc:        # SystemExit too: importing must not end the run
        del sys.modules[modname]
        raise PolicyError(f"policy file {path} failed to import: "
                          f"{describe_exception(exc)}") from exc
    return _pick(_policy_classes(module), str(path), attr)


def _instance(cls) -> Policy:
    """cls(), its __init__ run as the policy's own code (policy.call_policy)."""
    return call_policy(cls, "__init__()", cls)


def resolve(spec) -> Policy:
    """A Policy instance from a name, `module:Class`, `file.py[:Class]`, a
    Policy subclass or an instance."""
    if isinstance(spec, Policy):
        return spec
    if inspect.isclass(spec):
        if not issubclass(spec, Policy):
            raise PolicyError(f"{spec!r} is not a pytest_tlbperf.Policy subclass")
        return _instance(spec)
    if not isinstance(spec, str) or not spec:
        raise PolicyError(f"cannot make a policy from {spec!r}")
    target, _, attr = spec.partition(":")
    if target.endswith(".py"):
        return _instance(_load_file(Path(target), attr))
    if attr:
        try:
            module = importlib.import_module(target)
        except (PolicyError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise PolicyError(f"policy module {target!r} failed to import: "
                              f"{describe_exception(exc)}") from exc
        cls = getattr(module, attr, None)
        if not (inspect.isclass(cls) and issubclass(cls, Policy)):
            raise PolicyError(f"{spec!r}: {target} has no Policy subclass {attr!r}")
        return _instance(cls)
    return _instance(get(spec))
