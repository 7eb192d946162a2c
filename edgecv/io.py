"""Atomic file writes: a crash or Ctrl-C mid-write never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

from edgecv.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temp file lives in the destination directory so ``os.replace`` is an atomic rename on
    the same filesystem; the file is fsynced before the rename and the directory after it, so a
    crash leaves either the old file or the complete new one. The temp file is created with mode
    0666 filtered by the umask, as a plain ``open()`` would (without touching the process-wide
    umask, which other threads may be using). The parent directory is created if missing.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(dest)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # flush to disk before the rename makes it visible
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _create_temp(dest: Path) -> Path:
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{dest}: could not create a temporary file beside it")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Persist a rename: fsync the directory entry (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows: directories cannot be opened; NTFS journals renames itself
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike[str], *, option: str) -> Path:
    """Fail before the long work starts if ``path`` cannot be written (a read-only folder, a file
    where a folder is needed, an existing folder where a file is needed), so an hour of training
    or a whole video is never lost at the final write. Creates nothing."""
    dest = Path(path)
    if dest.is_dir():
        raise InputError(f"{option} {dest}: is a folder; expected a file path")
    parent = _existing_ancestor(dest.parent)
    if not parent.is_dir():
        raise InputError(f"{option} {dest}: {parent} is not a folder; expected a writable file path")
    _probe_write(parent, dest, option)
    return dest


def check_writable_dir(path: str | os.PathLike[str], *, option: str) -> Path:
    """Like :func:`check_writable` for an output folder (it may exist or be created)."""
    dest = Path(path)
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{option} {dest}: exists and is not a folder; expected a folder to write into")
    parent = _existing_ancestor(dest)
    if not parent.is_dir():
        raise InputError(f"{option} {dest}: {parent} is not a folder; expected a writable folder")
    _probe_write(parent, dest, option)
    return dest


def _probe_write(folder: Path, dest: Path, option: str) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root, read-only
    mounts, /proc and /sys (``os.access`` says yes to root everywhere)."""
    try:
        probe = _create_temp(folder / ".edgecv-write-check")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"{option} {dest}: cannot write in {folder} ({reason}); "
                         f"expected a writable location") from None
    probe.unlink()


def _existing_ancestor(path: Path) -> Path:
    """The nearest existing folder (or file in the way) at or above ``path``."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def read_text_lines(path: str | os.PathLike[str], *, option: str, expected: str) -> list[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file given to ``option`` (a leading BOM removed), for
    the options that read one item per line. An unreadable file, or a line that is not UTF-8,
    is one error naming the file, the line, the byte and ``expected``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{option} {p}: cannot read ({exc.strerror or exc})") from None
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{option} {p}: line {number} is not UTF-8 (byte 0x{raw[exc.start]:02x} at "
                             f"column {exc.start + 1}); expected {expected}") from None
        lines.append((number, line.lstrip("\ufeff") if number == 1 else line))
    return lines


def _json_default(obj: Any) -> Any:
    """Make numpy scalars/arrays, paths and tuples JSON-serialisable."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
