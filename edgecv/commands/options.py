"""Click option types shared by the commands (the CLI layer; the library never imports click)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import click

from edgecv.parsing import split_values


class CommaList(click.ParamType):
    """A comma-separated list option: ``--batch 1,8,32`` -> ``[1, 8, 32]``.

    Bad values are click usage errors (exit 2) naming the option, the value and an example."""

    name = "list"

    def __init__(self, convert: Callable[[str], Any] = int, *, example: str, minimum: float | None = None,
                 choices: Sequence[str] | None = None, lengths: Sequence[int] | None = None,
                 separators: str = ",", what: str | None = None) -> None:
        self.convert_item = convert
        self.what = what  # plural noun for the message when ``convert`` is a validating function
        self.example = example
        self.minimum = minimum
        self.choices = tuple(choices) if choices else None
        self.lengths = tuple(lengths) if lengths else None
        self.separators = separators

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[Any]:
        if isinstance(value, list):  # already converted (a default, or click calling twice)
            return value
        try:
            items = split_values(value, self.convert_item, separators=self.separators)
        except ValueError:
            items = None
        if not items or not self._acceptable(items):
            self.fail(f"{value!r}: expected {self._expected()}, e.g. {self.example}", param, ctx)
        if self.choices:
            items = [str(i).lower() for i in items]
        return items

    def _acceptable(self, items: list[Any]) -> bool:
        if self.lengths and len(items) not in self.lengths:
            return False
        if self.minimum is not None and any(i < self.minimum for i in items):
            return False
        return not self.choices or all(str(i).lower() in self.choices for i in items)

    def _expected(self) -> str:
        if self.choices:
            return "comma-separated values from " + ", ".join(self.choices)
        kind = {int: "integers", float: "numbers"}.get(self.convert_item, self.what or "values")
        if self.minimum == 1 and self.convert_item is int:
            kind = "positive integers"
        counts = f"{' or '.join(map(str, self.lengths))} " if self.lengths else ""
        return f"{counts}comma-separated {kind}"


PREPROCESS_FLAGS = ("--size", "--resize", "--crop", "--stretch", "--scale", "--mean", "--std", "--bgr")
PREPROCESS_KEYS = tuple(flag[2:] for flag in PREPROCESS_FLAGS)  # click's parameter names
BACKEND_KEYS = ("device_id", "fp16", "fast_start", "cache_dir", "provider_option", "precision")


def take(params: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Move one option group (``PREPROCESS_KEYS``, ``BACKEND_KEYS``) out of click's parameters,
    so a command's options dataclass holds the group as one field instead of repeating it."""
    return {key: params.pop(key) for key in keys if key in params}


def preprocess_options(*, what: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The preprocessing flags of a foreign model, shared by ``infer`` and ``inspect`` so both
    read them identically; ``what`` prefixes each help line (e.g. "--activations: ")."""
    options = [
        click.option("--size", type=CommaList(int, minimum=1, lengths=(1, 2), separators=",x", example="224,224"),
                     default=None, metavar="H,W", help=f"{what}Network input size (foreign models)."),
        click.option("--resize", type=click.IntRange(min=1), default=None, metavar="SHORT_SIDE",
                     help=f"{what}Resize the short side to this, then centre-crop to the input size."),
        click.option("--crop", type=click.IntRange(min=1), default=None, metavar="N",
                     help=f"{what}Centre crop N x N (sets the size)."),
        click.option("--stretch", is_flag=True, help=f"{what}Resize the whole image to the input size (no crop)."),
        click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
                     help=f"{what}Multiply 0-255 pixels by S (default 1/255)."),
        click.option("--mean", type=CommaList(float, lengths=(1, 3), example="0.485,0.456,0.406"), default=None,
                     metavar="R,G,B", help=f"{what}Mean subtracted after scaling."),
        click.option("--std", type=CommaList(float, lengths=(1, 3), example="0.229,0.224,0.225"), default=None,
                     metavar="R,G,B", help=f"{what}Std divided after scaling."),
        click.option("--bgr", is_flag=True, help=f"{what}Feed BGR instead of RGB."),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def preprocess_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing flags that were given, as ``PreprocessOverrides`` / ``load(**overrides)``
    keywords (flags left out are not passed, so the model's own values stay)."""
    out: dict[str, Any] = {}
    if params.get("size"):
        size = list(params["size"])
        out["size"] = (size[0], size[-1])
    for key in ("resize", "crop", "scale"):
        if params.get(key) is not None:
            out[key] = params[key]
    for key in ("mean", "std"):
        if params.get(key):
            out[key] = tuple(params[key])
    for key in ("stretch", "bgr"):
        if params.get(key):
            out[key] = True
    return out


class ProviderType(click.ParamType):
    """``--provider``: a backend family (auto, cpu, cuda, tensorrt, openvino) with an optional
    device (``openvino:GPU``); validated by the runtime's own list of backends."""

    name = "provider"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from edgecv.runtimes.engines.base import normalize_provider

        try:
            return normalize_provider(str(value))
        except ValueError as exc:
            self.fail(str(exc).removeprefix(f"provider {value!r}: "), param, ctx)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE, e.g. trt_max_workspace_size=2147483648",
                                 param_hint="--provider-option")
    return key.strip(), value.strip()


def backend_options() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """GPU / OpenVINO options shared by ``infer``, ``profile`` and ``val`` (the runtime decides
    what each means for the backend that runs; see ``EngineOptions``)."""
    options = [
        click.option("--device", "device_id", type=click.IntRange(min=0), default=None, metavar="N",
                     help="GPU index for --provider cuda / tensorrt [default: 0]."),
        click.option("--fp16", is_flag=True, help="TensorRT: build fp16 kernels (automatic for an fp16 export)."),
        click.option("--fast-start", is_flag=True,
                     help="CUDA: heuristic cuDNN algorithm search (fast first run) instead of exhaustive "
                          "(best throughput)."),
        click.option("--cache-dir", default=None, metavar="DIR",
                     help="TensorRT engine and timing caches [default: $EDGECV_CACHE_DIR or the per-user cache]."),
        click.option("--provider-option", "provider_option", multiple=True, metavar="KEY=VALUE",
                     help="Passed to the execution provider as given (repeatable)."),
        click.option("--precision", type=click.Choice(["auto", "f32", "bf16", "f16"]), default="auto",
                     show_default=True, help="OpenVINO inference precision (auto = the device's default)."),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def engine_fields(params: dict[str, Any]) -> dict[str, Any]:
    """The :func:`backend_options` values as ``EngineOptions`` keyword arguments."""
    return {"device_id": params.get("device_id"), "fp16": bool(params.get("fp16")),
            "fast_start": bool(params.get("fast_start")), "cache_dir": params.get("cache_dir"),
            "provider_options": dict(_key_value(t) for t in params.get("provider_option") or ()),
            "precision": params.get("precision") or "auto"}
