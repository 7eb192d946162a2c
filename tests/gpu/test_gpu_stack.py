"""The GPU stack as this machine has it, and the providers ONNX Runtime really grants."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _gpu  # noqa: E402

pytestmark = pytest.mark.gpu


def _smi() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return "nvidia-smi not found"
    out = subprocess.run([exe, "--query-gpu=index,name,driver_version,memory.total,compute_cap",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=False)
    return out.stdout.strip() or out.stderr.strip()


def test_gpu_stack_and_granted_providers(tiny):
    import onnxruntime as ort

    from edgecv.runtimes.engines import gpu_info
    from edgecv.runtimes.engines.session import nvidia_gpu_present

    if not nvidia_gpu_present():
        pytest.skip("no NVIDIA GPU / CUDA device on this machine")
    stack = gpu_info.gpu_stack()
    ident = gpu_info.gpu_identity(0) or {}
    rows = [{"provider": p, "asked": p, "granted": ", ".join(_gpu.granted(p, tiny))}
            for p in ("auto", "cuda", "tensorrt")]
    body = "\n".join([
        f"- GPU 0: {ident.get('name', 'unknown')} (compute capability {ident.get('compute_capability', '?')})",
        f"- nvidia-smi: `{_smi()}`",
        f"- CUDA driver {stack['cuda_driver']}, CUDA runtime wheel {stack['cuda_runtime']}, cuDNN {stack['cudnn']}, "
        f"TensorRT {stack['tensorrt']}",
        f"- onnxruntime {ort.__version__}; available (listed) providers: {', '.join(ort.get_available_providers())}",
        "", "Providers a session really got (`session.get_providers()`):", "",
        _gpu.table(rows, [("asked", "--provider"), ("granted", "granted")])])
    _gpu.write_section("10-stack", "GPU stack and granted providers", body)
    _gpu.require(_gpu.CUDA, tiny)  # a GPU without usable CUDA libraries: the report says so, then skip
    assert rows[0]["granted"].startswith(_gpu.CUDA), f"auto did not pick CUDA: {rows[0]['granted']}"
