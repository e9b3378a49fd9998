"""Saved runs: versioned JSON files in a storage folder (default `.tlbperf/`).

A run holds raw per-seed samples for every (test, profile, policy) cell plus
what is needed to trust a comparison later: the commit (`git describe
--always --dirty`, and the full hash), the model version, each profile's
digest, the engine and the options. Each sample carries the digest of the
program its seed executed, so a later run can pair with it seed by seed
where the programs match (`reports.verdicts.pairing`). Files are written
atomically and never overwritten; a corrupt or foreign file is reported by
name and does not hide the others.

Format versions (each older one is migrated on reading, `MIGRATIONS`):

1. the first format;
2. every sample has `program_digest` (None when migrated from 1: such a run
   can only be compared unpaired), every cell `rounds` (seeds its test ran
   before the adaptive rounds; None when migrated), the run `commit_sha`.

A saved run is found by id, name, file name or commit prefix, or through
git (`resolve_git`): `main`, `HEAD~1`, a branch (its merge-base with HEAD)
or any commit.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

from .engine.abi import SEVERITIES, VIOLATION_KINDS
from .errors import TlbperfError
from .userio import printable, read_text

try:
    import fcntl
except ImportError:         # not on Linux or a BSD: saves are not serialized
    fcntl = None

FORMAT = "pytest-tlbperf-run"
VERSION = 2


def _v1_to_v2(data: dict) -> dict:
    """Format 1 had no program digests, no initial rounds and no full hash."""
    cells = []
    for cell in data.get("cells") or []:
        if isinstance(cell, dict):
            cell = dict(cell, rounds=cell.get("rounds"), seeds=[
                dict(s, program_digest=s.get("program_digest")) if isinstance(s, dict) else s
                for s in cell.get("seeds") or []])
        cells.append(cell)
    return dict(data, version=2, cells=cells, commit_sha=data.get("commit_sha"))


# version -> function upgrading a run of that version to version + 1
MIGRATIONS: dict = {1: _v1_to_v2}


class StorageError(TlbperfError):
    """A saved run cannot be read, written or found."""


def git_commit(cwd=None) -> tuple:
    """(describe, dirty) of the working tree, or ("unknown", False)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=cwd,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    if out.returncode != 0:
        return "unknown", False
    describe = out.stdout.strip()
    return describe, describe.endswith("-dirty")


def _git(args, cwd=None):
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_sha(cwd=None):
    """The full hash of HEAD, or None outside a git work tree."""
    return _git(["rev-parse", "--verify", "-q", "HEAD"], cwd)


def resolve_git(ref, cwd=None):
    """(full hash, how it was found) of a commit named the way a developer
    names it, or None when git does not know `ref`: a branch (local or
    remote-tracking) means its merge-base with HEAD -- the commit the work
    was branched from -- and anything else (HEAD~1, a tag, a hash) that
    commit itself."""
    sha = _git(["rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], cwd)
    if not sha:
        return None
    for prefix in ("refs/heads/", "refs/remotes/"):
        if _git(["show-ref", "--verify", "-q", prefix + ref], cwd) is not None:
            base = _git(["merge-base", "HEAD", ref], cwd)
            if base:
                return base, f"merge-base of HEAD and {ref}"
    return sha, ref


def git_order(cwd=None) -> list:
    """Full hashes of HEAD's history, oldest first (topological order)."""
    out = _git(["rev-list", "--topo-order", "--reverse", "HEAD"], cwd)
    return out.split() if out else []


def run_matches_sha(run, sha) -> bool:
    """Whether a saved run was made at commit `sha`: its full hash, or for a
    format-1 run the abbreviated hash inside its `git describe`."""
    if run.get("commit_sha"):
        return run["commit_sha"] == sha
    commit = str(run.get("commit", "")).removesuffix("-dirty")
    short = commit.rsplit("-g", 1)[-1]
    return len(short) >= 7 and all(c in "0123456789abcdef" for c in short) \
        and sha.startswith(short)


# What a run file holds, level by level: field -> (check, required). The
# whole file is checked when it is loaded, so a bad value is named with its
# file and place instead of crashing a report later. A new field is a line.
def _str(v):
    return isinstance(v, str)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def _strs(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _table(check):
    return lambda v: isinstance(v, dict) and all(check(x) for x in v.values())


_STR, _INT, _NUMBER, _STRS = ("a string", _str), ("an integer", _int), \
    ("a finite number", _number), ("a list of strings", _strs)
RUN_FIELDS = {
    "format": (_STR, True), "version": (_INT, True), "id": (_STR, True),
    "name": (("a string or null", lambda v: v is None or _str(v)), False),
    "created": (_STR, False), "commit": (_STR, True),
    "dirty": (("true or false", lambda v: isinstance(v, bool)), False),
    "model_version": (_STR, True), "baseline": (_STR, False),
    "options": (("an object", lambda v: isinstance(v, dict)), False),
    "profiles": (("an object of digests", _table(_str)), False),
    "engines": (_STRS, False), "file": (_STR, False),
    "commit_sha": (("a string or null", lambda v: v is None or _str(v)), False),
    "cells": (("a list", lambda v: isinstance(v, list)), True),
}
CELL_FIELDS = {
    "test": (_STR, True), "profile": (_STR, True), "policy": (_STR, True),
    "workload": (_STR, False), "engine": (_STR, False), "metrics": (_STRS, False),
    "expected": (_STRS, False), "shows": (_STRS, False),
    "rounds": (("an integer or null", lambda v: v is None or _int(v)), False),
    "same_knobs": (("a string or null", lambda v: v is None or _str(v)), False),
    "seeds": (("a list", lambda v: isinstance(v, list)), True),
}
SAMPLE_FIELDS = {
    "seed": (_INT, True),
    "metrics": (("an object of finite numbers", _table(_number)), True),
    "violations": (("a list", lambda v: isinstance(v, list)), True),
    "program_digest": (("a string or null", lambda v: v is None or _str(v)), False),
}
VIOLATION_FIELDS = {
    "kind": (("a violation kind (" + ", ".join(VIOLATION_KINDS) + ")",
              lambda v: v in VIOLATION_KINDS), True),
    "severity": (("a severity (" + ", ".join(SEVERITIES) + ")", lambda v: v in SEVERITIES),
                 True),
    "cpu": (_INT, True), "time_ns": (_INT, True), "trace": (_STRS, True),
}
MAX_RUN_BYTES = 256 << 20


def _check_fields(obj, fields, where, source) -> None:
    if not isinstance(obj, dict):
        raise StorageError(f"{source}: {where or 'the run'} must be an object, got "
                           f"{_short(obj)}")
    for key, ((what, check), required) in fields.items():
        if key not in obj:
            if required:
                raise StorageError(f"{source}: {where}{'.' if where else ''}{key} is missing")
            continue
        if not check(obj[key]):
            raise StorageError(f"{source}: {where}{'.' if where else ''}{key} must be {what}, "
                               f"got {_short(obj[key])}")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_run(data, source) -> dict:
    """Validate (and migrate) a run read from `source`; return it. Every
    field is checked, down to each metric value, against RUN_FIELDS and the
    tables below it; the error names the file and the field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StorageError(f"{source}: not a pytest-tlbperf run (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not _int(version) or version < 1:
        raise StorageError(f"{source}: run has no valid format version")
    if version > VERSION:
        raise StorageError(f"{source}: written by a newer pytest-tlbperf (format version "
                           f"{version}, this one reads up to {VERSION})")
    while version < VERSION:
        data = MIGRATIONS[version](data)
        version = data["version"]
    _check_fields(data, RUN_FIELDS, "", source)
    for i, cell in enumerate(data["cells"]):
        _check_fields(cell, CELL_FIELDS, f"cells[{i}]", source)
        for j, sample in enumerate(cell["seeds"]):
            _check_fields(sample, SAMPLE_FIELDS, f"cells[{i}].seeds[{j}]", source)
            for k, violation in enumerate(sample["violations"]):
                _check_fields(violation, VIOLATION_FIELDS,
                              f"cells[{i}].seeds[{j}].violations[{k}]", source)
    return data


def comparability(run, reference) -> list:
    """Why a comparison of `run` with the saved `reference` may show the
    model rather than the patch: a different model version, or a profile
    of the same name whose saved digest differs."""
    warnings = []
    label = f"run {reference.get('id') or reference.get('name') or '?'}"
    if run.get("model_version") != reference.get("model_version"):
        warnings.append(f"{label} was made by model version {reference.get('model_version')}, "
                        f"this one by {run.get('model_version')}: differences may come from "
                        f"the model, not the policy")
    mine, theirs = run.get("profiles") or {}, reference.get("profiles") or {}
    for name in sorted(set(mine) & set(theirs)):
        if mine[name] != theirs[name]:
            warnings.append(f"profile {name} differs from the one {label} ran on (digest "
                            f"{mine[name]} vs {theirs[name]}): differences may come from the "
                            f"machine, not the policy")
    return warnings


class Storage:
    """A folder of saved runs, named NNNN_<name>.json in order of saving."""

    def __init__(self, path):
        self.path = Path(path)

    def _files(self):
        """NNNN_<name>.json files in order of their number (numerically:
        10000_x comes after 9999_x)."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.glob("*.json")
                 if (m := _NUMBERED.match(p.name))]
        return [p for _, p in sorted(found)]

    def load_file(self, path) -> dict:
        path = Path(path)
        text = read_text(path, "saved run", MAX_RUN_BYTES, StorageError)
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise StorageError(f"{path}: corrupt JSON ({exc.msg} at line {exc.lineno})") \
                from None
        except ValueError as exc:             # NaN or Infinity
            raise StorageError(f"{path}: corrupt JSON ({exc})") from None
        except RecursionError:
            raise StorageError(f"{path}: corrupt JSON (nested too deeply)") from None
        return _printable_labels(check_run(data, path))

    def runs(self, on_error=None) -> list:
        """Every readable run, oldest first. Unreadable files are passed to
        `on_error(StorageError)` and skipped."""
        out = []
        for path in self._files():
            try:
                out.append(self.load_file(path))
            except StorageError as exc:
                exc.path = path
                if on_error is None:
                    raise
                on_error(exc)
        return out

    def find(self, ref, on_error=None, cwd=None) -> dict:
        """A run by id ("0003"), name, file name, commit prefix, "latest", or
        a git name of its commit (`resolve_git`: main, HEAD~1, a branch's
        merge-base, ...), the latest run of that commit; git is asked in
        `cwd` (default: the current directory). A ref that names an
        unreadable file (its id or file name) raises that file's error, not
        "no saved run"."""
        unreadable = []

        def skipped(exc):
            unreadable.append(exc)
            if on_error is not None:
                on_error(exc)
        runs = self.runs(skipped)
        if not runs:
            raise StorageError(f"no saved runs in {self.path}")
        if ref in (None, "", "latest"):
            return runs[-1]
        for run in reversed(runs):
            if ref in (run["id"], run.get("name"), run.get("file")):
                return run
        matches = [run for run in runs if str(run["commit"]).startswith(ref)
                   or str(run["commit"]).split("-g")[-1].startswith(ref)]
        if matches:
            return matches[-1]
        for exc in unreadable:
            if exc.path.name == ref or exc.path.name.startswith(f"{ref}_"):
                raise exc
        resolved = resolve_git(ref, cwd)
        if resolved:
            sha, how = resolved
            matches = [run for run in runs if run_matches_sha(run, sha)]
            if matches:
                return matches[-1]
            raise StorageError(f"no saved run of commit {sha[:12]} ({how}) in {self.path}; "
                               f"saved commits: {', '.join(r['commit'] for r in runs)}")
        raise StorageError(f"no saved run {ref!r} in {self.path} (ids: "
                           f"{', '.join(r['id'] for r in runs)})")

    def save(self, run: dict, name=None) -> Path:
        """Write `run` as the next NNNN_<name>.json, atomically, never
        overwriting: the file is linked into place, which fails if it exists.

        Numbering is serialized by an flock on `.lock` in the folder, so
        parallel saves (several CI jobs, xdist controllers) get distinct
        numbers; the link still refuses a number a writer without the lock
        took. Any failure is a StorageError naming the folder."""
        label = _safe(name or run.get("commit") or "run")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.path / ".lock", "a") as lock:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                return self._link_next(run, name, label)
        except StorageError:
            raise
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot save the run in {self.path}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None

    def _link_next(self, run, name, label) -> Path:
        existing = self._files()
        number = int(_NUMBERED.match(existing[-1].name).group(1)) + 1 if existing else 1
        for _ in range(1000):
            run = dict(run, id=f"{number:04d}", name=name, file=f"{number:04d}_{label}.json")
            final = self.path / run["file"]
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(run, fh, indent=1, sort_keys=True, allow_nan=False)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, final)
                return final
            except FileExistsError:
                number += 1             # a writer without the lock took it
            finally:
                os.unlink(tmp)
        raise StorageError(f"cannot save the run in {self.path}: 1000 numbers from "
                           f"{number - 1000} on are taken")


_NUMBERED = re.compile(r"^(\d+)_")
# what reports print of a run: escaped as the plugin escapes them when it
# makes a run, so that a file written by anything else cannot put control
# characters on a terminal either
_LABELS = ("id", "name", "commit", "baseline")
_CELL_LABELS = ("test", "profile", "policy", "workload")


def _printable_labels(run: dict) -> dict:
    for key in _LABELS:
        if isinstance(run.get(key), str):
            run[key] = printable(run[key])
    for cell in run["cells"]:
        for key in _CELL_LABELS:
            if isinstance(cell.get(key), str):
                cell[key] = printable(cell[key])
    return run


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(label))[:60]
