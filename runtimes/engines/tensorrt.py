"""TensorRT provider options: engine and timing caches keyed by model, GPU and versions, fp16, and
optimisation profiles from the model's dynamic axes (no torch, no TensorRT import).

Why each default:

* Without ``trt_engine_cache_enable`` / ``trt_timing_cache_enable`` TensorRT rebuilds its engine at
  every start -- minutes on a Jetson. Both caches are on, in a per-user folder: ``--cache-dir``,
  else ``$EDGECV_CACHE_DIR/tensorrt``, else the platform cache (``$XDG_CACHE_HOME`` or
  ``~/.cache``/edgecv/tensorrt on Linux, ``~/Library/Caches/edgecv/tensorrt`` on macOS,
  ``%LOCALAPPDATA%\\edgecv\\cache\\tensorrt`` on Windows).
* An engine is valid only for the model, GPU, TensorRT and ONNX Runtime versions, precision and
  profile it was built for, and ONNX Runtime's own file names do not say which. So every
  combination gets its own folder, ``engines/<model>-<sha256 of the file>/<gpu>-trt<v>-ort<v>-
  <fp16|fp32>-<hash of the build options>``: a changed model, GPU or version never meets a stale
  engine, and two commands with different batch ranges keep their own engines instead of
  rebuilding each other's. The timing cache (per GPU and TensorRT version) is shared by all models:
  reuse across models is what it is for.
* Without ``trt_profile_min/opt/max_shapes`` TensorRT rebuilds for every new dynamic shape. The
  profile covers batch 1 .. the largest batch the command will run (``EngineOptions.batch_sizes``;
  the largest is also the shape TensorRT optimises for) and, for a text model, sequence length
  1 .. its recorded maximum (``edgecv.max_seq_len`` / the tokenizer's ``max_len``).
* ``trt_fp16_enable`` follows ``--fp16``, and is on by itself for an fp16 export (the file already
  chose fp16 arithmetic).

Whether an engine is cached is decided by looking for ``*.engine`` files in the key folder before
the session is created; a build is announced on stderr at that moment (it can take minutes, and the
session does not return until it is done), and the outcome (reused / built) is reported after.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecv.runtimes.engines import gpu_info
from edgecv.runtimes.inputs import InputInfo

TENSORRT = "TensorrtExecutionProvider"
PROFILE_KEYS = ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes")
# options that name where the caches live, not what gets built: left out of the key
_NOT_IN_KEY = frozenset({"device_id", "trt_engine_cache_enable", "trt_engine_cache_path",
                         "trt_timing_cache_enable", "trt_timing_cache_path"})


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# Where the "building a TensorRT engine ..." line goes (replaceable, e.g. by a GUI or a test).
announce: Callable[[str], None] = _stderr


def truthy(value: Any) -> bool:
    """ONNX Runtime's reading of a boolean provider option ("1", "true", "True")."""
    return str(value).strip().lower() in ("1", "true")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The TensorRT cache folder: ``--cache-dir`` (an explicit flag beats the environment), else
    ``$EDGECV_CACHE_DIR/tensorrt``, else the platform's per-user cache."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("EDGECV_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "tensorrt"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "edgecv" / "cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "edgecv"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecv"
    return base / "tensorrt"


_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> digest: a sweep hashes once


def model_digest(path: Path, model: Any) -> str:
    """sha256 of the ``.onnx`` file (and name, size and mtime of its external weight files)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = _sha256(path, model)
    return _digests[key]


def _sha256(path: Path, model: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    locations = {e.value for init in model.graph.initializer for e in init.external_data if e.key == "location"}
    for name in sorted(locations):
        try:
            st = (path.parent / name).stat()
        except OSError:
            continue
        digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def profile_ranges(inputs: Sequence[InputInfo], *, contract: Any, batch_sizes: Sequence[int],
                   seq_lens: Sequence[int]) -> tuple[dict[str, str], dict[str, tuple[int, int, int]], str | None]:
    """``trt_profile_*`` options for the model's dynamic inputs, the (min, opt, max) ranges they
    cover ("batch", "seq") and, when a dynamic dim has no known range, why there is no profile."""
    top = max((int(b) for b in batch_sizes if b), default=1)
    ranges: dict[str, tuple[int, int, int]] = {}
    shapes: dict[str, list[list[int]]] = {}
    for inp in inputs:
        if all(d is not None for d in inp.shape):
            continue  # fixed shape: nothing to choose
        lo, mid, hi = [], [], []
        for i, dim in enumerate(inp.shape):
            span = _dim_range(inp, i, dim, top=top, contract=contract, seq_lens=seq_lens)
            if span is None:
                return {}, {}, (f"input {inp.name!r} dim {i} is dynamic with no known range; TensorRT builds "
                                f"for the shapes it sees (pass --provider-option trt_profile_min_shapes=... "
                                f"with _opt_ and _max_ to fix one)")
            if dim is None:
                ranges["batch" if i == 0 else "seq" if _is_seq(inp, i) else f"{inp.name}[{i}]"] = span
            lo.append(span[0])
            mid.append(span[1])
            hi.append(span[2])
        shapes[inp.name] = [lo, mid, hi]
    if not shapes:
        return {}, {}, None
    options = {key: ",".join(f"{name}:{'x'.join(map(str, dims[k]))}" for name, dims in shapes.items())
               for k, key in enumerate(PROFILE_KEYS)}
    return options, ranges, None


def _is_seq(inp: InputInfo, index: int) -> bool:
    """Dim 1 of an (N, T) integer input: a text model's token positions."""
    return index == 1 and len(inp.shape) == 2 and np.issubdtype(inp.dtype, np.integer)


def _dim_range(inp: InputInfo, index: int, dim: int | None, *, top: int, contract: Any,
               seq_lens: Sequence[int]) -> tuple[int, int, int] | None:
    if dim is not None:
        return dim, dim, dim
    if index == 0:
        return 1, top, top  # batch 1 too: the last chunk of a folder or a single live frame
    if _is_seq(inp, index):
        limit = getattr(contract, "max_seq_len", None) if contract is not None else None
        lens = [int(s) for s in seq_lens if s]
        high = limit or (max(lens) if lens else None)
        if high is None:
            return None
        return 1, min(max(lens), high) if lens else high, high
    spec = getattr(contract, "preprocess", None) if contract is not None else None
    if spec is not None and len(inp.shape) == 4:  # an image's H/W/C fixed by the model's preprocessing
        size = int(spec.input_shape(1)[index])
        return size, size, size
    return None


@dataclass
class TrtPlan:
    """TensorRT's options for one session, and what to say about its engine before and after."""

    model: str  # file name, for notices
    options: dict[str, str]  # the defaults with the user's overrides merged over them
    fp16: bool
    fp16_reason: str | None  # "--fp16", "fp16 export", "--provider-option"
    ranges: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    profile_note: str | None = None
    expect_build: bool = True  # False where no TensorRT library is found: no build line to announce
    before: dict[str, int] = field(default_factory=dict)  # engine file -> mtime before the session

    @property
    def cache_dir(self) -> Path | None:
        """The engine folder, None when the user turned the engine cache off."""
        if not truthy(self.options.get("trt_engine_cache_enable", "False")):
            return None
        return Path(self.options["trt_engine_cache_path"])

    def prepare(self) -> None:
        """Create the cache folders (ONNX Runtime creates only the last level), note which engines
        exist, and announce a build when there is none: it runs inside session creation. Where no
        TensorRT library is found, ONNX Runtime cannot grant TensorRT either: nothing is created."""
        if not self.expect_build:
            return
        for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
            if self.options.get(key):
                Path(self.options[key]).mkdir(parents=True, exist_ok=True)
        folder = self.cache_dir
        self.before = engine_files(folder) if folder is not None else {}
        if not self.before:
            where = (f"cached in {folder}" if folder is not None
                     else "the engine cache is off, so every start rebuilds it")
            announce(f"building a TensorRT engine for {self.model} ({self.describe()}); "
                     f"the first run can take minutes; {where}")

    def describe(self) -> str:
        """"batch 1-8, seq 1-64, fp16" for notices."""
        parts = [f"{name} {lo}-{hi}" if lo != hi else f"{name} {lo}" for name, (lo, _o, hi) in self.ranges.items()]
        parts.append("fp16" if self.fp16 else "fp32")
        return ", ".join(parts)

    def outcome(self, create_ms: float) -> tuple[list[str], dict[str, Any]]:
        """Notices and report fields once the session holds TensorRT."""
        folder = self.cache_dir
        info: dict[str, Any] = {"dir": str(folder) if folder else None, "cached_before": bool(self.before)}
        notes: list[str] = []
        if folder is None:
            info["state"] = "off"
            notes.append("notice: the TensorRT engine cache is off (trt_engine_cache_enable); every start "
                         "rebuilds the engine")
        else:
            after = engine_files(folder)
            if self.before and after == self.before:
                info["state"] = "hit"
                notes.append(f"TensorRT: reused the cached engine (no rebuild) from {folder}")
            elif after != self.before:
                info["state"] = "rebuilt" if self.before else "built"
                notes.append(f"TensorRT: {info['state']} the engine in {create_ms / 1000:.1f} s; cached in {folder}")
            else:
                info["state"] = "pending"
                notes.append(f"TensorRT: the engine is built on the first run; cached in {folder}")
        if self.profile_note:
            notes.append(f"notice: no TensorRT optimisation profile: {self.profile_note}")
        profile = {"fp16": self.fp16, "fp16_reason": self.fp16_reason,
                   "ranges": {k: list(v) for k, v in self.ranges.items()}}
        return notes, {"tensorrt_cache": info, "tensorrt_build": profile}


def engine_files(folder: Path) -> dict[str, int]:
    """``{file name: mtime_ns}`` of the serialized engines in ``folder``."""
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.engine")}


def plan_tensorrt(path: Path, *, device_id: int, fp16: bool, cache_dir: str | None, batch_sizes: Sequence[int],
                  seq_lens: Sequence[int], overrides: dict[str, str], ort_version: str) -> TrtPlan:
    """The TensorRT options for ``path`` (reads the graph's inputs and contract, hashes the file)."""
    from edgecv.contract import contract_from_model
    from edgecv.graph.precision import model_precision
    from edgecv.onnx_file import graph_inputs, load_onnx

    model = load_onnx(path, load_external_data=False)
    contract = contract_from_model(model, source=path.name)
    inputs = [InputInfo.from_onnx(i, source=path.name) for i in graph_inputs(model)]
    profiles, ranges, note = profile_ranges(inputs, contract=contract, batch_sizes=batch_sizes, seq_lens=seq_lens)
    if any(k in overrides for k in PROFILE_KEYS):  # the user's own profile: our ranges no longer apply
        profiles, ranges, note = {}, {}, None
    exported_fp16 = model_precision(model) == "fp16"
    reason = "--fp16" if fp16 else "fp16 export" if exported_fp16 else None
    if "trt_fp16_enable" in overrides:
        on = truthy(overrides["trt_fp16_enable"])
        reason = "--provider-option" if on else None
    else:
        on = reason is not None
    build = {"trt_fp16_enable": "True" if on else "False", **profiles,
             **{k: v for k, v in overrides.items() if k not in _NOT_IN_KEY}}
    gpu = gpu_info.gpu_key(device_id)
    trt = gpu_info.tensorrt_version() or "unknown"
    root = cache_root(cache_dir)
    options_hash = hashlib.sha256(repr(sorted(build.items())).encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem)[:48] or "model"
    engine_dir = (root / "engines" / f"{stem}-{model_digest(path, model)[:12]}"
                  / f"{gpu}-trt{trt}-ort{ort_version}-{'fp16' if on else 'fp32'}-{options_hash}")
    options = {"device_id": str(device_id),
               "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(engine_dir),
               "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(root / "timing" / f"{gpu}-trt{trt}"),
               **build, **overrides}
    return TrtPlan(path.name, options, on, reason, ranges, note, expect_build=trt != "unknown")
