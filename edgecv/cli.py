"""The ``edgecv`` command line.

Thin by design: each command lives in ``edgecv/commands/<name>.py``, parses options and calls the
library. Commands are imported lazily so ``edgecv --help`` and ``edgecv infer --help`` stay fast
and never import torch. ``EdgecvError`` from the library becomes a one-line ``Error: ...`` on
stderr with exit code 1; click usage errors exit 2.

OpenCV and its FFmpeg/V4L2 backends write their own warnings to stderr (``moov atom not found``,
camera probing, ``Connection refused``), around the one edgecv line that says what went wrong.
They read ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL`` when they initialise, so
:func:`quiet_native_logs` sets them before a command module (and with it cv2) is imported;
``--verbose`` calls :func:`restore_native_logs`. Values the user set are never touched.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from edgecv._version import __version__
from edgecv.errors import EdgecvError, install_hint

# command name -> (module, attribute, one-line help shown by ``edgecv --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "models": ("edgecv.commands.models", "models", "List the model architectures with params and MACs."),
    "inspect": ("edgecv.commands.inspect", "inspect", "Per-layer shapes, params and MACs of a model or .onnx file."),
    "train": ("edgecv.commands.train", "train", "Train a classifier on an image folder or a text CSV."),
    "export": ("edgecv.commands.export", "export", "Export a checkpoint to a verified, self-describing ONNX file."),
    "infer": ("edgecv.commands.infer", "infer", "Classify images, folders, video, cameras, streams or text."),
    "profile": ("edgecv.commands.profile", "profile", "Measure ONNX model latency on this device."),
    "val": ("edgecv.commands.val", "val", "Accuracy, latency and size of .onnx files side by side: which to ship."),
    "demo": ("edgecv.commands.demo", "demo", "Run the whole chain on a built-in synthetic dataset."),
}


# OpenCV's logger (SILENT) and FFmpeg's av_log level (-8 = AV_LOG_QUIET), read at initialisation
NATIVE_LOG_ENV = {"OPENCV_LOG_LEVEL": "SILENT", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
_native_env_set: set[str] = set()  # the variables set here (not by the user), for restoring


def quiet_native_logs() -> None:
    """Silence OpenCV's and FFmpeg's own stderr logging unless the user configured it: set the
    environment before cv2 initialises, and lower the level of an already imported cv2."""
    for key, value in NATIVE_LOG_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            _native_env_set.add(key)
    if "OPENCV_LOG_LEVEL" in _native_env_set:
        _set_opencv_log_level("LOG_LEVEL_SILENT")


def restore_native_logs() -> None:
    """``--verbose``: undo :func:`quiet_native_logs` (FFmpeg reads its variable at the first
    capture, so this must run before a video, camera or stream is opened)."""
    if "OPENCV_LOG_LEVEL" in _native_env_set:
        _set_opencv_log_level("LOG_LEVEL_WARNING")  # OpenCV's default
    for key in list(_native_env_set):
        os.environ.pop(key, None)
        _native_env_set.discard(key)


def _set_opencv_log_level(level: str) -> None:
    """Only when cv2 is already imported (importing it here would slow down ``edgecv --help``)."""
    cv2 = sys.modules.get("cv2")
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None and hasattr(logging, level):
        logging.setLogLevel(getattr(logging, level))
    elif hasattr(cv2, "setLogLevel"):  # older builds: the same levels as plain ints
        cv2.setLogLevel({"LOG_LEVEL_SILENT": 0, "LOG_LEVEL_WARNING": 3}[level])


# optional dependency -> the extra that installs it
OPTIONAL_MODULES = {"torch": "train", "onnxsim": "train", "onnxscript": "train", "matplotlib": "plot"}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _module_exists(COMMANDS[name][0])]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.list_commands(ctx):
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        quiet_native_logs()  # before the command's imports initialise OpenCV
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The top-level help lists one-liners from COMMANDS instead of importing every command.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgecvError as exc:
            raise click.ClickException(_one_line(exc)) from None
        except ModuleNotFoundError as exc:
            # An edge install has no torch: training/export commands say what to install, in one
            # line; for torch, the CPU-only build first (edgecv.errors.install_hint says why).
            top = (exc.name or "").split(".")[0]
            if top not in OPTIONAL_MODULES:
                raise
            raise click.ClickException(
                f"{top} is not installed; 'edgecv {ctx.invoked_subcommand}' needs it: "
                f"{install_hint(top, OPTIONAL_MODULES[top])}"
            ) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def _module_exists(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="edgecv")
def cli() -> None:
    """edgecv: from a PyTorch classifier to a fast, verified ONNX model on an edge device.

    \b
    Example:
      edgecv demo                      # whole chain on synthetic data, CPU, a few minutes
      edgecv train data/ --model mobilenet_v2 --weights mobilenet_v2.pth --out runs/exp1
      edgecv export runs/exp1/best.pt -o model.onnx --data data/ --int8
      edgecv infer model.onnx --camera 0
      edgecv profile model.onnx --batch 1,8 --threads 1,2
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="edgecv")

