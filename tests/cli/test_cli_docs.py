"""docs/cli.md is generated from the commands' ``--help``; these tests keep the two in step."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "python scripts/gen_cli_docs.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered() -> str:
    return _generator().render()


def test_cli_md_is_up_to_date(rendered: str) -> None:
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    if committed != rendered:
        # Name the first differing line so the failure says what changed, then how to fix it.
        for n, (old, new) in enumerate(zip(committed.splitlines(), rendered.splitlines()), start=1):
            if old != new:
                where = f"first difference at line {n}:\n  docs/cli.md: {old!r}\n  --help now:  {new!r}"
                break
        else:
            where = "one of them has extra lines at the end"
        pytest.fail(f"docs/cli.md does not match the CLI's --help ({where}); regenerate it with: {REGENERATE}")


def test_every_command_and_option_is_documented(rendered: str) -> None:
    from edgecv.cli import cli

    ctx = click.Context(cli, info_name="edgecv")
    names = cli.list_commands(ctx)
    assert "demo" in names and len(names) >= 7
    for name in names:
        assert f"## edgecv {name}\n" in rendered
        section = rendered.split(f"## edgecv {name}\n", 1)[1].split("\n## ", 1)[0]
        for param in cli.get_command(ctx, name).params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts + param.secondary_opts:
                    assert flag in section, f"edgecv {name}: {flag} missing from docs/cli.md"


def test_rendering_ignores_the_terminal_width() -> None:
    code = "import sys; sys.path.insert(0, 'scripts'); import gen_cli_docs; print(gen_cli_docs.render(), end='')"
    outputs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**__import__("os").environ, "COLUMNS": cols}).stdout
               for cols in ("40", "250")}
    assert len(outputs) == 1 and next(iter(outputs)).startswith("# Command-line reference")


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    gen = _generator()
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert gen.main(["--check", "--output", str(stale)]) == 1
    assert gen.main(["--output", str(stale)]) == 0
    assert gen.main(["--check", "--output", str(stale)]) == 0
