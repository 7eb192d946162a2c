"""CUDA / TensorRT provider logic without a GPU: a test double of ONNX Runtime drives the real
selection, options, cache and I/O binding code through every case.

The double reports whatever providers a test "grants", records the exact provider options each
session was created with, and runs the graph on a real CPU session underneath -- so I/O binding
(device buffers, rebinding, read-back) is exercised for real, with every "cuda" buffer recorded and
placed on the CPU. A granted TensorRT writes an ``.engine`` file into the cache folder it was
given, as ONNX Runtime does, so cache hits and builds are decided by the real code.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as real_ort
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _infer_fixtures as F  # noqa: E402

from edgecv.errors import ProviderError  # noqa: E402
from edgecv.runtimes.engines import gpu_info, tensorrt  # noqa: E402
from edgecv.runtimes.engines import session as S  # noqa: E402
from edgecv.runtimes.engines.base import EngineOptions, open_engine  # noqa: E402
from edgecv.runtimes.profiling import report, sweep  # noqa: E402

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
ALL = [TRT, CUDA, CPU]
GPU_KEY = "fake-gpu-sm90"


def fake_ort(available: list[str], grant: Callable[[list[str]], list[str]]) -> types.ModuleType:
    """An ``onnxruntime`` stand-in over the real CPU runtime (see the module docstring)."""
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = "1.31.1"
    ort.created = []  # type: ignore[attr-defined]  # {"providers", "provider_options", "got"} per session
    ort.device_buffers = []  # type: ignore[attr-defined]  # (device_type, device_id) per allocation
    ort.output_devices = []  # type: ignore[attr-defined]
    ort.bound_runs = 0  # type: ignore[attr-defined]

    class Binding:
        def __init__(self, real: Any) -> None:
            self.real = real

        def bind_output(self, name: str, device_type: str = "cpu", device_id: int = 0) -> None:
            ort.output_devices.append((device_type, device_id))  # type: ignore[attr-defined]
            self.real.bind_output(name, "cpu", 0)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    class InferenceSession:
        def __init__(self, path: str, sess_options: Any = None, providers: list[str] | None = None,
                     provider_options: list[dict[str, str]] | None = None) -> None:
            self._got = grant(list(providers or []))
            ort.created.append({"providers": list(providers or []),  # type: ignore[attr-defined]
                                "provider_options": provider_options, "got": self._got})
            if self._got[0] == TRT and provider_options:
                _fake_engine_build(dict(zip(providers or [], provider_options))[TRT])
            self._real = real_ort.InferenceSession(path, providers=[CPU])

        def get_providers(self) -> list[str]:
            return self._got

        def io_binding(self) -> Binding:
            return Binding(self._real.io_binding())

        def run_with_iobinding(self, binding: Binding, options: Any = None) -> None:
            ort.bound_runs += 1  # type: ignore[attr-defined]
            self._real.run_with_iobinding(binding.real, options)

        def __getattr__(self, name: str) -> Any:  # get_inputs, get_outputs, get_modelmeta, run
            return getattr(self._real, name)

    def from_shape_and_type(shape: Any, element_type: Any, device_type: str = "cpu", device_id: int = 0) -> Any:
        ort.device_buffers.append((device_type, device_id))  # type: ignore[attr-defined]
        return real_ort.OrtValue.ortvalue_from_shape_and_type(shape, element_type, "cpu", 0)

    ort.InferenceSession = InferenceSession  # type: ignore[attr-defined]
    ort.OrtValue = types.SimpleNamespace(ortvalue_from_shape_and_type=from_shape_and_type)  # type: ignore[attr-defined]
    ort.SessionOptions = real_ort.SessionOptions  # type: ignore[attr-defined]
    ort.RunOptions = real_ort.RunOptions  # type: ignore[attr-defined]
    ort.GraphOptimizationLevel = real_ort.GraphOptimizationLevel  # type: ignore[attr-defined]
    ort.get_available_providers = lambda: list(available)  # type: ignore[attr-defined]
    ort.set_default_logger_severity = lambda level: None  # type: ignore[attr-defined]
    ort.preload_dlls = lambda: None  # type: ignore[attr-defined]
    return ort


def _fake_engine_build(options: dict[str, str]) -> None:
    """What ONNX Runtime's TensorRT provider leaves in its engine cache after a build."""
    if tensorrt.truthy(options.get("trt_engine_cache_enable", "0")):
        folder = Path(options["trt_engine_cache_path"])
        if not any(folder.glob("*.engine")):
            (folder / "TensorrtExecutionProvider_TRTKernel_graph_main_0_0_sm90.engine").write_bytes(b"plan")


def granting(*names: str) -> Callable[[list[str]], list[str]]:
    """Grant the requested providers that are in ``names`` (plus CPU, always)."""
    return lambda chain: [p for p in chain if p in names or p == CPU]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fixed GPU identity and TensorRT version, and the caches under tmp_path."""
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gpu_info, "gpu_key", lambda device_id=0: GPU_KEY)
    monkeypatch.setattr(gpu_info, "gpu_identity", lambda device_id=0: {"name": "Fake GPU", "compute_capability": "9.0"})
    monkeypatch.setattr(gpu_info, "tensorrt_version", lambda: "10.9.0")
    monkeypatch.setattr(S, "_ort_log_severity", None)
    announced: list[str] = []
    monkeypatch.setattr(tensorrt, "announce", announced.append)
    return types.SimpleNamespace(root=tmp_path / "cache" / "tensorrt", announced=announced, tmp=tmp_path)


def use(monkeypatch, ort: types.ModuleType, *, gpu: bool = True) -> types.ModuleType:
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    monkeypatch.setattr(S, "nvidia_gpu_present", lambda: gpu)
    return ort


@pytest.fixture
def image(env):
    return F.image_model(env.tmp / "m.onnx")


def _engine_dir(env: Any, model: Path, suffix: str) -> Path:
    digest = tensorrt.model_digest(model, F.onnx.load(str(model)))[:12]
    return env.root / "engines" / f"{model.stem}-{digest}" / f"{GPU_KEY}-trt10.9.0-ort1.31.1-{suffix}"


def _x(batch: int = 2) -> np.ndarray:
    return np.random.default_rng(batch).random((batch, 3, 16, 16), dtype=np.float32)


# ---------------------------------------------------------------- CUDA

def test_auto_with_cuda_granted_runs_cuda_with_its_options_and_io_binding(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(CUDA)))
    engine = open_engine(image, EngineOptions(provider="auto"))
    assert ort.created[0]["providers"] == [CUDA, CPU]
    assert ort.created[0]["provider_options"] == [{"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}, {}]
    assert engine.device == "cuda" and engine.device_io is not None
    out = engine.run(["logits"], {"input": _x()})[0]
    np.testing.assert_allclose(out, real_ort.InferenceSession(str(image)).run(None, {"input": _x()})[0], rtol=1e-6)
    assert ort.bound_runs == 1 and set(ort.device_buffers) == {("cuda", 0)} and set(ort.output_devices) == {("cuda", 0)}
    rep = engine.report()
    assert rep["io_binding"] is True and rep["cudnn_conv_algo_search"] == "EXHAUSTIVE" and rep["device_id"] == 0
    assert rep["provider_options"] == {CUDA: {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}}
    assert engine.notices == ["CUDA on GPU 0 (Fake GPU): cuDNN convolution search EXHAUSTIVE (fastest kernels; the "
                              "first run per input shape is slow; --fast-start: HEURISTIC); I/O binding on"]


def test_fast_start_and_device_pick_heuristic_search_and_gpu_1(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(CUDA)))
    engine = open_engine(image, EngineOptions(provider="cuda", fast_start=True, device_id=1))
    assert ort.created[0]["provider_options"][0] == {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC"}
    engine.run(None, {"input": _x()})
    assert set(ort.device_buffers) == {("cuda", 1)}
    assert "cuDNN convolution search HEURISTIC" in engine.notices[0]


@pytest.mark.parametrize("gpu, notices", [(False, 0), (True, 1)])
def test_cuda_listed_but_not_granted_runs_plain_cpu(monkeypatch, env, image, gpu, notices):
    ort = use(monkeypatch, fake_ort(ALL, granting()), gpu=gpu)
    engine = open_engine(image, EngineOptions(provider="auto"))
    assert engine.device == "cpu" and engine.device_io is None and "run" not in vars(engine)
    assert len(engine.notices) == notices and all("running on CPU" in n for n in engine.notices)
    engine.run(None, {"input": _x()})
    assert ort.bound_runs == 0 and ort.device_buffers == []
    assert "io_binding" not in engine.report() and "cudnn_conv_algo_search" not in engine.report()


def test_explicit_cuda_not_granted_is_an_error_unless_fallback(monkeypatch, env, image):
    use(monkeypatch, fake_ort(ALL, granting()))
    with pytest.raises(ProviderError, match="'cuda' is not usable here .*gave CPUExecutionProvider"):
        open_engine(image, EngineOptions(provider="cuda"))
    engine = open_engine(image, EngineOptions(provider="cuda", allow_fallback=True))
    assert engine.device == "cpu" and engine.notices == ["notice: CUDA is not usable here; running on CPU"]


def test_io_binding_can_be_turned_off(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(CUDA)))
    engine = open_engine(image, EngineOptions(provider="cuda", io_binding=False))
    engine.run(None, {"input": _x()})
    assert engine.device_io is None and ort.bound_runs == 0 and engine.report()["io_binding"] is False
    assert engine.notices[0].endswith("; I/O binding off")


def test_io_binding_allocates_once_per_shape_and_reads_back_only_what_is_asked(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(CUDA)))
    engine = open_engine(image, EngineOptions(provider="cuda"))
    expected = {b: real_ort.InferenceSession(str(image)).run(None, {"input": _x(b)})[0] for b in (1, 4)}
    for batch in (4, 1, 4, 1, 4):  # a video's full and last batches alternate without reallocating
        np.testing.assert_allclose(engine.run(None, {"input": _x(batch)})[0], expected[batch], rtol=1e-6)
    assert len(ort.device_buffers) == 2  # one input buffer per shape, allocated once
    assert len(ort.output_devices) == 2  # outputs allocated by the first run at each shape, then kept
    first = engine.run(["logits"], {"input": np.ones((1, 3, 16, 16), np.float32)})[0]
    engine.run(["logits"], {"input": np.zeros((1, 3, 16, 16), np.float32)})
    assert first[0, 0] == pytest.approx(10.0)  # a returned array is never overwritten by the next run


# ---------------------------------------------------------------- TensorRT

def test_tensorrt_options_cache_keys_and_profile_for_batch_1_to_8(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(TRT, CUDA)))
    engine = open_engine(image, EngineOptions(provider="tensorrt", batch_sizes=(1, 2, 4, 8)))
    trt_opts, cuda_opts, cpu_opts = ort.created[0]["provider_options"]
    engine_dir = Path(trt_opts["trt_engine_cache_path"])
    assert engine_dir.parent == _engine_dir(env, image, "x").parent
    assert engine_dir.name.startswith(f"{GPU_KEY}-trt10.9.0-ort1.31.1-fp32-")
    assert trt_opts == {
        "device_id": "0",
        "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(env.root / "timing" / f"{GPU_KEY}-trt10.9.0"),
        "trt_fp16_enable": "False",
        "trt_profile_min_shapes": "input:1x3x16x16",
        "trt_profile_opt_shapes": "input:8x3x16x16",
        "trt_profile_max_shapes": "input:8x3x16x16",
    }
    assert cuda_opts == {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"} and cpu_opts == {}
    assert env.announced == [f"building a TensorRT engine for m.onnx (batch 1-8, fp32); the first run can take "
                             f"minutes; cached in {engine_dir}"]
    assert f"TensorRT: built the engine in {engine.create_ms / 1000:.1f} s; cached in {engine_dir}" in engine.notices
    assert engine.report()["tensorrt_cache"] == {"dir": str(engine_dir), "cached_before": False, "state": "built"}
    assert engine.device_io is not None and engine.precision == "fp32"
    assert engine.notices[-1].startswith("TensorRT on GPU 0 (Fake GPU): fp32, profile batch 1-8; other nodes on CUDA")

    again = open_engine(image, EngineOptions(provider="tensorrt", batch_sizes=(8, 1)))
    assert ort.created[1]["provider_options"][0] == trt_opts and len(env.announced) == 1  # no second build line
    assert f"TensorRT: reused the cached engine (no rebuild) from {engine_dir}" in again.notices
    assert again.report()["tensorrt_cache"]["state"] == "hit"


def test_a_new_model_gpu_or_tensorrt_version_never_reuses_an_engine(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(TRT, CUDA)))

    def engine_dir(path: Path) -> str:
        open_engine(path, EngineOptions(provider="tensorrt"))
        return ort.created[-1]["provider_options"][0]["trt_engine_cache_path"]

    first = engine_dir(image)
    assert engine_dir(image) == first and len(env.announced) == 1
    changed = F.image_model(image, labels=("a", "b", "c", "d"))  # same file name, new content
    assert engine_dir(changed) != first and len(env.announced) == 2
    monkeypatch.setattr(gpu_info, "gpu_key", lambda device_id=0: "other-gpu-sm87")
    assert "/other-gpu-sm87-trt10.9.0-" in engine_dir(changed)
    monkeypatch.setattr(gpu_info, "tensorrt_version", lambda: "10.13.0")
    assert "/other-gpu-sm87-trt10.13.0-" in engine_dir(changed) and len(env.announced) == 4


def test_fp16_flag_and_fp16_export_build_fp16_engines(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(TRT, CUDA)))
    engine = open_engine(image, EngineOptions(provider="tensorrt", fp16=True))
    opts = ort.created[-1]["provider_options"][0]
    assert opts["trt_fp16_enable"] == "True" and "-fp16-" in opts["trt_engine_cache_path"]
    assert engine.precision == "fp16" and "fp16 (--fp16)" in engine.notices[-1]
    half = F.image_model(env.tmp / "half.onnx", dtype="float16")
    engine = open_engine(half, EngineOptions(provider="tensorrt"))
    assert ort.created[-1]["provider_options"][0]["trt_fp16_enable"] == "True"
    assert engine.report()["tensorrt_build"]["fp16_reason"] == "fp16 export"


def test_text_model_profile_covers_its_recorded_maximum_length(monkeypatch, env):
    ort = use(monkeypatch, fake_ort(ALL, granting(TRT, CUDA)))
    text = F.text_model(env.tmp / "t.onnx", max_len=64)
    open_engine(text, EngineOptions(provider="tensorrt", batch_sizes=(1, 8), seq_lens=(16, 32)))
    opts = ort.created[-1]["provider_options"][0]
    assert (opts["trt_profile_min_shapes"], opts["trt_profile_opt_shapes"], opts["trt_profile_max_shapes"]) == (
        "input_ids:1x1", "input_ids:8x32", "input_ids:8x64")
    assert env.announced[-1].startswith("building a TensorRT engine for t.onnx (batch 1-8, seq 1-64, fp32)")
    open_engine(text, EngineOptions(provider="tensorrt"))  # infer: one text at a time, up to the maximum
    opts = ort.created[-1]["provider_options"][0]
    assert (opts["trt_profile_min_shapes"], opts["trt_profile_opt_shapes"], opts["trt_profile_max_shapes"]) == (
        "input_ids:1x1", "input_ids:1x64", "input_ids:1x64")


def test_dynamic_dims_without_a_known_range_get_no_profile_and_say_so(monkeypatch, env):
    ort = use(monkeypatch, fake_ort(ALL, granting(TRT, CUDA)))
    foreign = F.image_model(env.tmp / "f.onnx", contract=False, size="S")
    engine = open_engine(foreign, EngineOptions(provider="tensorrt"))
    assert not any(k.startswith("trt_profile") for k in ort.created[-1]["provider_options"][0])
    assert any("no TensorRT optimisation profile: input 'input' dim 2 is dynamic" in n for n in engine.notices)


def test_provider_options_are_merged_over_the_defaults_and_reported(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(TRT, CUDA)))
    given = {"trt_max_workspace_size": "2147483648", "cudnn_conv_algo_search": "DEFAULT", "device_id": "1",
             "trt_engine_cache_path": str(env.tmp / "mine")}
    engine = open_engine(image, EngineOptions(provider="tensorrt", provider_options=given))
    trt_opts, cuda_opts, _cpu = ort.created[-1]["provider_options"]
    assert trt_opts["trt_max_workspace_size"] == "2147483648" and trt_opts["device_id"] == "1"
    assert trt_opts["trt_engine_cache_path"] == str(env.tmp / "mine") and (env.tmp / "mine").is_dir()
    assert cuda_opts == {"device_id": "1", "cudnn_conv_algo_search": "DEFAULT"}
    assert engine.report()["provider_options"] == {TRT: trt_opts, CUDA: cuda_opts}
    assert ("notice: provider options for TensorrtExecutionProvider: trt_max_workspace_size=2147483648, "
            f"device_id=1, trt_engine_cache_path={env.tmp / 'mine'}") in engine.notices
    assert "notice: provider options for CUDAExecutionProvider: cudnn_conv_algo_search=DEFAULT, device_id=1" \
        in engine.notices
    engine.run(None, {"input": _x()})
    assert set(ort.device_buffers) == {("cuda", 1)}


def test_provider_options_on_cpu_go_to_the_cpu_provider(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting()))
    engine = open_engine(image, EngineOptions(provider="cpu", provider_options={"use_arena": "0"}))
    assert ort.created[-1]["provider_options"] == [{"use_arena": "0"}]
    assert engine.report()["provider_options"] == {CPU: {"use_arena": "0"}}


def test_tensorrt_falling_to_cuda_names_cuda_and_builds_nothing(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting(CUDA)))
    engine = open_engine(image, EngineOptions(provider="tensorrt", allow_fallback=True, fp16=True, device_id=1))
    # ONNX Runtime's own retry without TensorRT drops the options: the session is asked for again
    assert [c["providers"] for c in ort.created] == [[TRT, CUDA, CPU], [CUDA, CPU]]
    assert ort.created[1]["provider_options"] == [{"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE"}, {}]
    assert engine.device == "cuda" and engine.device_io is not None and engine.report()["device_id"] == 1
    assert engine.notices[0] == "notice: TENSORRT is not usable here; running on CUDA"
    assert not any(n.startswith("TensorRT:") for n in engine.notices) and "tensorrt_cache" not in engine.report()
    assert any(n.startswith("notice: --fp16 applies to TensorRT engines; CUDA runs") for n in engine.notices)
    assert engine.precision == "fp32"


def test_tensorrt_falling_to_cpu_names_cpu_and_binds_nothing(monkeypatch, env, image):
    ort = use(monkeypatch, fake_ort(ALL, granting()))
    engine = open_engine(image, EngineOptions(provider="tensorrt", allow_fallback=True))
    assert engine.device == "cpu" and engine.device_io is None
    assert engine.notices == ["notice: TENSORRT is not usable here; running on CPU"]
    with pytest.raises(ProviderError, match="'tensorrt' is not usable here .*gave CPUExecutionProvider"):
        open_engine(image, EngineOptions(provider="tensorrt"))
    engine.run(None, {"input": _x()})
    assert ort.bound_runs == 0


def test_cache_folder_order(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path / "env"))
    assert tensorrt.cache_root(str(tmp_path / "flag")) == tmp_path / "flag"  # --cache-dir
    assert tensorrt.cache_root() == tmp_path / "env" / "tensorrt"
    monkeypatch.delenv("EDGECV_CACHE_DIR")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tensorrt.cache_root() == tmp_path / "xdg" / "edgecv" / "tensorrt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tensorrt.cache_root() == tmp_path / "home" / ".cache" / "edgecv" / "tensorrt"


# ---------------------------------------------------------------- profile

def test_profile_times_host_to_device_copy_apart_on_cuda_only(monkeypatch, env, image):
    use(monkeypatch, fake_ort(ALL, granting(CUDA)))
    info = sweep.inspect_model(image)
    rows = []
    for provider in ("cuda", "cpu"):
        cfg = sweep.Config(info, provider, 2, 1)
        rows.append(sweep.profile_config(cfg, warmup=1, runs=5, duration_s=None).to_dict())
    gpu, cpu = rows
    assert gpu["provider"] == "cuda" and gpu["h2d_ms"] > 0 and gpu["compute_ms"] > 0 and gpu["io_binding"] is True
    assert gpu["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert not {"h2d_ms", "compute_ms", "io_binding", "cudnn_conv_algo_search"} & set(cpu)
    assert "h2d ms" in report.format_results(rows) and "h2d ms" not in report.format_results([cpu])
