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
import os
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import TlbperfError

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


def check_run(data, source) -> dict:
    """Validate (and migrate) a run read from `source`; return it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StorageError(f"{source}: not a pytest-tlbperf run (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise StorageError(f"{source}: run has no valid format version")
    if version > VERSION:
        raise StorageError(f"{source}: written by a newer pytest-tlbperf (format version "
                           f"{version}, this one reads up to {VERSION})")
    while version < VERSION:
        data = MIGRATIONS[version](data)
        version = data["version"]
    for key in ("id", "commit", "model_version", "cells"):
        if key not in data:
            raise StorageError(f"{source}: run lacks {key!r}")
    if not isinstance(data["cells"], list):
        raise StorageError(f"{source}: 'cells' must be a list")
    for i, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict) or not {"test", "profile", "policy", "seeds"} <= set(cell):
            raise StorageError(f"{source}: cell {i} lacks test/profile/policy/seeds")
        for sample in cell["seeds"]:
            if not isinstance(sample, dict) or not isinstance(sample.get("metrics"), dict):
                raise StorageError(f"{source}: cell {i} has a seed without metrics")
    return data


class Storage:
    """A folder of saved runs, named NNNN_<name>.json in order of saving."""

    def __init__(self, path):
        self.path = Path(path)

    def _files(self):
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob("*.json") if p.name[:4].isdigit())

    def load_file(self, path) -> dict:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise StorageError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StorageError(f"{path}: corrupt JSON ({exc.msg} at line {exc.lineno})") \
                from None
        return check_run(data, path)

    def runs(self, on_error=None) -> list:
        """Every readable run, oldest first. Unreadable files are passed to
        `on_error(StorageError)` and skipped."""
        out = []
        for path in self._files():
            try:
                out.append(self.load_file(path))
            except StorageError as exc:
                if on_error is None:
                    raise
                on_error(exc)
        return out

    def find(self, ref, on_error=None, cwd=None) -> dict:
        """A run by id ("0003"), name, file name, commit prefix, "latest", or
        a git name of its commit (`resolve_git`: main, HEAD~1, a branch's
        merge-base, ...), the latest run of that commit; git is asked in
        `cwd` (default: the current directory)."""
        runs = self.runs(on_error)
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
        overwriting: the file is linked into place, which fails if it exists."""
        self.path.mkdir(parents=True, exist_ok=True)
        label = _safe(name or run.get("commit") or "run")
        while True:
            existing = self._files()
            number = int(existing[-1].name[:4]) + 1 if existing else 1
            run = dict(run, id=f"{number:04d}", name=name, file=f"{number:04d}_{label}.json")
            final = self.path / run["file"]
            fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(run, fh, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, final)
                return final
            except FileExistsError:
                time.sleep(0.01)        # another process took the number: try the next
            finally:
                os.unlink(tmp)


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(label))[:60]
