"""The CLI group itself: version, help, module entry point, error conversion."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
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


BLOCK_TORCH = "import sys\nsys.modules['torch'] = None  # as on an edge device without PyTorch\n"
TORCH_HINT = ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu (the CPU-only build; "
              "skip this on a CUDA machine), then pip install 'edgecv[train]'")


def _edgecv_without_torch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real ``edgecv`` console script (``python -m edgecv`` if it is not on disk), with torch
    blocked by a sitecustomize on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCK_TORCH, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    script = Path(sys.executable).with_name("edgecv")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "edgecv"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("command", ["train", "export", "demo", "models"])
def test_without_torch_each_command_is_a_one_line_cpu_first_hint(tmp_path: Path, command: str) -> None:
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir(parents=True)
    (tmp_path / "best.pt").write_bytes(b"never read: torch is missing first")
    args = {"train": ["train", "data", "--out", "run"], "export": ["export", "best.pt"],
            "demo": ["demo", "--out", "demo", "--quick"], "models": ["models"]}[command]
    proc = _edgecv_without_torch(tmp_path, *args)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("Error: torch is not installed; ") and lines[0].endswith(TORCH_HINT)
    if command in ("train", "export"):
        assert f"'edgecv {command}' needs it" in lines[0]
    assert not any((tmp_path / name).exists() for name in ("run", "demo", "best.onnx", "runs"))


def test_install_hints() -> None:
    from edgecv.errors import MissingDependencyError, install_hint, require

    assert install_hint("torch", "train") == TORCH_HINT
    assert install_hint("torch.nn", "train") == TORCH_HINT
    assert install_hint("onnxsim", "train") == "pip install 'edgecv[train]'"  # torch is there already
    assert install_hint("matplotlib", "plot") == "pip install 'edgecv[plot]'"
    with pytest.raises(MissingDependencyError, match="edgecv\\[plot\\]"):
        require("edgecv_no_such_module", "plot")
