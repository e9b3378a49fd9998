"""Machine samples for the host backend's readers: tests/fixtures/host/*.txt
in `head`'s multi-file format (a "==> /path <==" line, then the file),
written back into a directory tree that stands for / (see the README there)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "host"


def files(name) -> dict:
    """{path relative to /: text} of sample `name` (without .txt)."""
    out, path, lines = {}, None, []
    for line in (FIXTURES / f"{name}.txt").read_text().splitlines():
        if line.startswith("==> ") and line.endswith(" <=="):
            if path is not None:
                out[path] = "\n".join(lines).rstrip("\n") + "\n"
            path, lines = line[4:-4].lstrip("/"), []
        else:
            lines.append(line)
    if path is not None:
        out[path] = "\n".join(lines).rstrip("\n") + "\n"
    return out


def materialize(name, dest) -> Path:
    """Write sample `name` under `dest`; returns `dest`, the root to read."""
    dest = Path(dest)
    for path, text in files(name).items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return dest


def text(name) -> str:
    return (FIXTURES / name).read_text()


def host_unavailable():
    """Why host runs cannot happen here (None: they can). The runner must
    have been built where TLBPERF_REQUIRE_NATIVE is set (CI, tox): a
    missing runner fails there instead of skipping."""
    import os

    from pytest_tlbperf import host
    reason = host.unavailable()
    if reason and "not built" in reason and os.environ.get("TLBPERF_REQUIRE_NATIVE"):
        raise RuntimeError(f"TLBPERF_REQUIRE_NATIVE is set but {reason}")
    if reason is None and not os.sched_getaffinity(0):
        reason = "this process may run on no CPU (sched_getaffinity is empty)"
    return reason
