"""Generate docs/cli.md from the click commands' own ``--help`` text, so the reference never drifts.

    python scripts/gen_cli_docs.py           # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 if docs/cli.md is out of date

The help is rendered at a fixed width, independent of the terminal, so the output is the same on
every machine; ``tests/cli/test_cli_docs.py`` regenerates it in memory and compares.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
WIDTH = 100  # columns of the rendered help text

HEADER = """\
# Command-line reference

Every `edgecv` command and option, exactly as `--help` prints them. This file is generated:
regenerate it with `python scripts/gen_cli_docs.py` after changing a command (the test suite
fails while it is out of date). Conventions shared by all commands: exit code 0 on success,
1 on failure (a one-line `Error: ...` on stderr), 2 on a usage error; `--json` gives machine
output where a command has it; `-h` is short for `--help`.
"""


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def _context(cmd: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """A context as click builds it for ``--help`` (the command's own settings, e.g. ``-h``),
    but at a fixed width."""
    settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    return click.Context(cmd, info_name=name, parent=parent, **settings)


def command_helps() -> list[tuple[str, str]]:
    """``[("edgecv", help), ("edgecv models", help), ...]`` in the order ``edgecv --help`` lists them."""
    from edgecv.cli import cli

    root = _context(cli, "edgecv", None)
    out = [("edgecv", cli.get_help(root))]
    for name in cli.list_commands(root):
        cmd = cli.get_command(root, name)
        if cmd is None or getattr(cmd, "hidden", False):
            continue
        ctx = _context(cmd, name, root)
        out.append((f"edgecv {name}", cmd.get_help(ctx)))
    return out


def render() -> str:
    """The whole of docs/cli.md."""
    helps = command_helps()
    index = " · ".join(f"[`{title}`](#{_anchor(title)})" for title, _ in helps)
    parts = [HEADER, f"Commands: {index}", ""]
    for title, text in helps:
        body = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
        parts += [f"## {title}", "", "```text", body, "```", ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is out of date")
    parser.add_argument("--output", type=Path, default=CLI_MD, help=f"file to write [{CLI_MD.relative_to(ROOT)}]")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; regenerate it with: python scripts/gen_cli_docs.py",
                  file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
