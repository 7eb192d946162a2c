"""Assemble ``gpu_report.md`` from the GPU checks' sections and pytest's JUnit XML (stdlib only).

    python tests/gpu/report.py --junit junit.xml --sections DIR --out gpu_report.md

The report lists what was measured, then every check that could not run and why (its skip
reason) and every failure. Prints one closing line and exits 1 only when a check failed: on a
machine without a CUDA device every check skips and the line says so (exit 0).
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read_junit(path: Path) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(passed, skipped (name, reason), failed (name, message)) test cases."""
    passed, skipped, failed = [], [], []
    if not path.is_file():
        return passed, skipped, [("pytest", f"no results ({path} missing): the test run did not start")]
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        skip = case.find("skipped")
        fail = case.find("failure") if case.find("failure") is not None else case.find("error")
        if fail is not None:
            failed.append((name, (fail.get("message") or "").splitlines()[0][:300]))
        elif skip is not None:
            reason = (skip.get("message") or "").removeprefix("Skipped: ")
            skipped.append((name, reason))
        else:
            passed.append(name)
    return passed, skipped, failed


def gpu_present() -> tuple[bool, str]:
    """(an NVIDIA GPU is there, one line on it), asked the way edgecv itself asks."""
    try:
        from edgecv.runtimes.engines.gpu_info import gpu_identity
        from edgecv.runtimes.engines.session import nvidia_gpu_present
    except ImportError as exc:
        return False, f"edgecv is not importable ({exc})"
    if not nvidia_gpu_present():
        return False, "no NVIDIA GPU / CUDA device on this machine"
    ident = gpu_identity(0) or {}
    return True, f"GPU 0: {ident.get('name', 'unknown')}"


def build(junit: Path, sections: Path) -> tuple[str, str, int]:
    """(Markdown, closing line, exit code)."""
    passed, skipped, failed = read_junit(junit)
    present, gpu_line = gpu_present()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = ["# edgecv GPU check", "", f"- {stamp}, {platform.node()}, Python {platform.python_version()}",
             f"- {gpu_line}", f"- checks: {len(passed)} passed, {len(skipped)} could not run, {len(failed)} failed", ""]
    for section in sorted(sections.glob("*.md")) if sections.is_dir() else []:
        parts += [section.read_text(encoding="utf-8").rstrip(), ""]
    if skipped:
        parts += ["## Could not run", ""] + [f"- `{name}`: {reason}" for name, reason in skipped] + [""]
    if failed:
        parts += ["## Failed", ""] + [f"- `{name}`: {message}" for name, message in failed] + [""]
    if failed:
        line, code = f"gpu_check: {len(failed)} check(s) FAILED; see the report", 1
    elif not present:
        line, code = (f"gpu_check: no CUDA device is present on this machine; all {len(skipped)} GPU checks "
                      f"were skipped cleanly (reasons in the report)", 0)
    else:
        line, code = f"gpu_check: {len(passed)} passed, {len(skipped)} could not run (reasons in the report)", 0
    return "\n".join(parts) + "\n", line, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, required=True)
    parser.add_argument("--sections", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("gpu_report.md"))
    args = parser.parse_args(argv)
    text, line, code = build(args.junit, args.sections)
    args.out.write_text(text, encoding="utf-8")
    print(f"{line}\nreport: {args.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
