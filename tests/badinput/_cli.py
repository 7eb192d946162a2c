"""Running the real ``edgecv`` command in a subprocess and checking its failure contract:
one line on stderr naming the input, the right exit code, never a traceback.

Import with ``sys.path.insert(0, str(Path(__file__).parent))`` (tests run with
``--import-mode=importlib`` and no root conftest)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence


def run_edgecv(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None,
               env: dict[str, str] | None = None, stdin: str | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m edgecv ARGS`` with captured text output (no terminal: no progress bars)."""
    return subprocess.run([sys.executable, "-m", "edgecv", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, input=stdin if stdin is not None else "",
                          env={**os.environ, **(env or {})})


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The non-empty stderr lines, without click's usage preamble for usage errors."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode == 2:  # click prints "Usage: ...", "Try '... --help'", then "Error: ..."
        lines = [ln for ln in lines if not ln.startswith(("Usage:", "Try '"))]
    return lines


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *, code: int = 1,
                         names: Sequence[str | os.PathLike[str]] = (), says: Sequence[str] = ()) -> str:
    """Exit ``code``, no traceback, exactly one error line that names every item of ``names``
    (by file name) and contains every phrase of ``says``; returns that line."""
    context = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == code, context
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, context
    lines = error_lines(proc)
    assert len(lines) == 1, context
    line = lines[0]
    for name in names:
        assert Path(name).name in line, f"{Path(name).name!r} not named in: {line}"
    for phrase in says:
        assert phrase.lower() in line.lower(), f"{phrase!r} not in: {line}"
    return line
