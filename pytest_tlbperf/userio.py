"""The edge between a user and the tool: files a user names are read only if
they are regular files of a bounded size, output paths are checked before any
work is done, and strings a user controls (test ids, policy and workload
names) are escaped before they reach a terminal or a report.

Every error names the file and says what is wrong with it, as a
`TlbperfError` subclass chosen by the caller (ProfileError for a profile,
StorageError for a saved run).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import TlbperfError


def read_text(path, what: str, max_bytes: int, error=TlbperfError) -> str:
    """The UTF-8 text of the regular file `path`, at most `max_bytes` long.

    /dev/zero, a FIFO or a directory is refused before it is opened for
    reading: read_text() on /dev/zero fills memory, and on a FIFO it blocks
    until a writer comes. `what` names the file in messages ("profile")."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: cannot read {what}: not a regular file ({_kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise error(f"{path}: cannot read {what}: {st.st_size} bytes, more than the "
                    f"{max_bytes} a {what} may have")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    if len(data) > max_bytes:            # it grew since stat()
        raise error(f"{path}: cannot read {what}: more than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}: {what} is not UTF-8 text: byte 0x{data[exc.start]:02x} at "
                    f"offset {exc.start} (line {line})") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def check_output(path, what: str) -> str | None:
    """Why `path` cannot be written as `what` ("--tlbperf-html"), or None.

    Checked before a run starts, so a typo in an output path does not throw
    a long run's results away at its end. A FIFO is accepted only while a
    reader has it open (opening it for writing would otherwise block)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        parent = path.parent
        if not parent.is_dir():
            return f"{what} {path}: folder {parent} does not exist"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{what} {path}: folder {parent} is not writable"
        return None
    except OSError as exc:
        return f"{what} {path}: {exc.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return f"{what} {path}: is a directory"
    if stat.S_ISFIFO(st.st_mode):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return f"{what} {path}: a FIFO that no process reads"
            return f"{what} {path}: {exc.strerror}"
        return None
    if not os.access(path, os.W_OK):
        return f"{what} {path}: not writable"
    return None


def printable(text) -> str:
    """`text` with every control character (newline, escape, ...) written as
    a Python escape, so a test id, a policy name or a workload name cannot
    move the cursor, recolour the terminal or break a report's columns."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def printable_lines(text) -> str:
    """`printable()` line by line: the newlines of a multi-line message stay."""
    return "\n".join(printable(line) for line in str(text).split("\n"))
