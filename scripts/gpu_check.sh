#!/usr/bin/env bash
# Check edgecv's GPU paths on a CUDA machine and write gpu_report.md.
#
#   bash scripts/gpu_check.sh                # fresh venv (.venv-gpu), pip install ".[train,cuda,dev]"
#   bash scripts/gpu_check.sh --no-install   # use the current Python environment as it is
#
# Options:
#   --no-install        do not create a venv or install anything
#   --venv DIR          where to create the venv [.venv-gpu]
#   --tensorrt SPEC     also pip-install TensorRT's libraries, e.g. "tensorrt-cu13-libs==10.*" (use the
#                       major version your onnxruntime-gpu was built against), and put them on
#                       LD_LIBRARY_PATH for ONNX Runtime's TensorRT provider
#   --out FILE          report path [gpu_report.md]
#   -- ARGS             passed on to pytest (e.g. -- -k latency)
#
# torch: the default PyPI torch wheel for Linux x86-64 is a CUDA build, which is what a GPU box
# wants for the AMP and NCCL checks, so torch is NOT pinned to the CPU build the CPU test recipe
# uses. Set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu130) to pick a CUDA version,
# or TORCH_SPEC (e.g. "torch==2.13.0") to pin one.
#
# Runs the gpu-marked tests (tests/gpu): GPU stack and granted providers, a TensorRT engine built
# by one process and reused by the next, CUDA/TensorRT parity against CPU fp32, latency on CPU,
# CUDA and TensorRT, the stream loop with and without I/O binding, AMP training and an NCCL run.
# Each one that cannot run here skips with its reason, and the report lists it. Exit status: 0
# unless a check failed; on a machine without a CUDA device every check skips and the last line
# says so (exit 0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

install=1
venv=".venv-gpu"
tensorrt_spec=""
out="gpu_report.md"
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) install=0 ;;
        --venv) venv="$2"; shift ;;
        --tensorrt) tensorrt_spec="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$install" = 1 ]; then
    python3 -m venv "$venv"
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
    python -m pip install --quiet --upgrade pip
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        python -m pip install --quiet "${TORCH_SPEC:-torch}" --index-url "$TORCH_INDEX_URL"
    elif [ -n "${TORCH_SPEC:-}" ]; then
        python -m pip install --quiet "$TORCH_SPEC"
    fi
    python -m pip install --quiet -e ".[train,cuda,dev]"
    if [ -n "$tensorrt_spec" ]; then
        python -m pip install --quiet "$tensorrt_spec"
    fi
fi
py="$(command -v python || command -v python3)"

if ! "$py" -c "import edgecv, pytest" 2>/dev/null; then
    echo "gpu_check: edgecv or pytest is not importable by $py; run without --no-install, or pip install -e '.[train,cuda,dev]'" >&2
    exit 1
fi

# TensorRT from pip: its libraries live in site-packages, where ONNX Runtime does not look by itself
trt_libs="$("$py" - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
for name in ("tensorrt_libs", "tensorrt_cu13_libs", "tensorrt_cu12_libs"):
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
        print(pathlib.Path(list(spec.submodule_search_locations)[0]))
        break
EOF
)"
if [ -n "$trt_libs" ]; then
    export LD_LIBRARY_PATH="$trt_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/edgecv-gpu-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "gpu_check: running the gpu-marked tests with $py (this takes minutes on a GPU machine) ..."
set +e
EDGECV_GPU_REPORT_DIR="$work/sections" "$py" -m pytest -m gpu tests/gpu -q -rs -p no:cacheprovider \
    --junitxml="$work/junit.xml" "${pytest_args[@]+"${pytest_args[@]}"}"
status=$?
set -e
# 0: all passed/skipped, 1: a check failed, 5: nothing collected (an argument filtered everything out)
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ] && [ "$status" -ne 5 ]; then
    echo "gpu_check: pytest stopped with status $status before the checks could finish" >&2
fi
set +e
"$py" tests/gpu/report.py --junit "$work/junit.xml" --sections "$work/sections" --out "$out"
report_status=$?
set -e
if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
    exit 1
fi
exit "$report_status"
