"""The CLI group itself: version, help, module entry point, error conversion."""
from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from edgecv import __version__
from edgecv.cli import COMMANDS, LazyGroup, cli
from edgecv.errors import InputError


def test_version_and_help_list_every_command() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.list_commands(click.Context(cli)):
        assert name in result.output
    assert set(cli.list_commands(click.Context(cli))) <= set(COMMANDS)


def test_python_dash_m_runs_the_same_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "edgecv", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_library_errors_become_one_line_exit_1() -> None:
    @click.group(cls=LazyGroup)
    def group() -> None:
        pass

    @group.command("boom")
    def boom() -> None:
        raise InputError("data/: no images found (expected jpg/png files)")

    group.list_commands = lambda ctx: ["boom"]  # type: ignore[method-assign]
    group.get_command = lambda ctx, name: boom if name == "boom" else None  # type: ignore[method-assign]
    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: data/: no images found (expected jpg/png files)"
    usage = CliRunner().invoke(group, ["nope"])
    assert usage.exit_code == 2


def test_training_without_torch_is_a_one_line_hint(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code = ("import sys; sys.modules['torch'] = None; from edgecv.cli import main; "
            f"main(['train', {str(tmp_path)!r}, '--out', {str(tmp_path / 'run')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Error: torch is not installed; 'edgecv train' needs it: pip install 'edgecv[train]'"]
