"""The end of ``edgecv demo``: every artefact (path, size) and every figure, as JSON and as text.

``summary.json`` keeps the same document that ``edgecv demo --json`` prints, so scripts and the
tests read one format.
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from edgecv.table import format_table

if TYPE_CHECKING:
    from edgecv.demo.config import DemoConfig

# (name, path relative to --out, what it is); folders are summed.
ARTEFACTS: tuple[tuple[str, str, str], ...] = (
    ("dataset", "data", "generated images, data/{train,val}/<class>/*.png"),
    ("best checkpoint", "train/best.pt", "weights of the best epoch + training state"),
    ("last checkpoint", "train/last.pt", "resumable state of the last epoch"),
    ("metrics", "train/metrics.csv", "loss and accuracy per epoch"),
    ("training curves", "train/curves.png", "loss / accuracy plot"),
    ("confusion matrix", "train/confusion_matrix.png", "best epoch, validation set"),
    ("fp32 model", "model.onnx", "self-describing ONNX (contract in its metadata)"),
    ("int8 model", "model.int8.onnx", "static QDQ int8, calibrated on training images"),
    ("export report", "model.export.json", "parity of every export stage, int8 vs fp32 speed"),
    ("val report", "val/val.md", "edgecv val: fp32 vs int8 accuracy, latency and size, recommendation"),
    ("val results", "val/val.json", "the same as JSON, with per-class figures and confusion matrices"),
    ("val confusion (fp32)", "val/model/confusion_matrix.png", "validation images, counts and row-normalised"),
    ("val confusion (int8)", "val/model.int8/confusion_matrix.png", "the same for the int8 file"),
    ("input video", "video/shapes.mp4", "moving shapes, one class at a time"),
    ("video truth", "video/shapes.truth.json", "label and box of every frame"),
    ("annotated video", "stream/annotated.mp4", "the stream loop's output with predictions"),
    ("predictions", "stream/predictions.jsonl", "one JSON line per frame"),
    ("profile results", "profile/profile.json", "fp32 vs int8 latency, with environment"),
    ("profile report", "profile/profile.md", "the same as a Markdown table"),
    ("latency plot", "profile/latency.png", "latency distribution per model"),
    ("summary", "summary.json", "this summary"),
)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def list_artefacts(out: Path) -> list[dict[str, Any]]:
    """Every artefact that exists, with its size in bytes (summary.json: the file as written)."""
    rows = []
    for name, rel, what in ARTEFACTS:
        path = out / rel
        if path.exists():
            entry: dict[str, Any] = {"name": name, "path": str(path), "bytes": _size(path), "what": what}
            if path.is_dir():
                entry["files"] = sum(1 for f in path.rglob("*") if f.is_file())
            rows.append(entry)
    return rows


def _round(value: Any, digits: int = 4) -> Any:
    return round(float(value), digits) if isinstance(value, (int, float)) and value is not None else value


def build_summary(cfg: DemoConfig, out: Path, results: dict[str, Any], *, timings: Sequence[dict[str, Any]],
                  total_s: float) -> dict[str, Any]:
    """The summary document: settings, figures, artefacts, step times, environment."""

    data, trained, export, stream, prof = (results[k] for k in ("data", "train", "export", "stream", "profile"))
    val = results["val"]["report"]
    fp32 = export.deployed_stage()
    int8 = export.stage("int8")
    fp32_parity, int8_parity = (fp32.parity or {}) if fp32 else {}, (int8.parity or {}) if int8 else {}
    rows = prof["rows"]
    fp32_row = rows[0] if rows else {}
    int8_row = rows[1] if len(rows) > 1 else {}
    report = stream["report"]
    figures = {
        "classes": model_classes(trained, export, fallback=data["classes"]),
        "train_images": data["train_images"],
        "val_images": data["val_images"],
        "val_accuracy": _round(trained.best_val_acc),
        "best_epoch": trained.best_epoch,
        "epochs": len(trained.history),
        "fp32_parity_passed": bool(fp32_parity.get("passed")),
        "fp32_max_abs_diff": fp32_parity.get("max_abs"),
        "fp32_top1_agreement": fp32_parity.get("top1_agreement"),
        "parity_samples": fp32_parity.get("samples"),
        "int8_status": int8.status if int8 else None,
        "int8_top1_agreement": int8_parity.get("top1_agreement"),
        **val_figures(val),
        "int8_speed_check": _speed_check(int8),
        "int8_warning": _int8_warning(export),
        "int8_size_ratio": (int8.details or {}).get("size_ratio") if int8 else None,
        # int8 is calibrated on training images and judged on validation images, never the same
        "int8_calibration_samples": (export.data_split.get("calibration") or {}).get("samples"),
        "int8_calibration_source": (export.data_split.get("calibration") or {}).get("source"),
        "parity_source": (export.data_split.get("parity") or {}).get("source"),
        "stream_model": Path(stream["model"]).name,
        "video_frames": report.frames,
        "video_fps": _round(report.fps, 2),
        "video_frame_accuracy": _round(stream["frame_accuracy"]),
        "fp32_p50_ms": _round(fp32_row.get("p50_ms"), 4),
        "int8_p50_ms": _round(int8_row.get("p50_ms"), 4),
        "int8_speedup": _round(int8_row.get("speedup"), 3),
    }
    import torch

    env = dict(prof["env"])
    env["torch"] = torch.__version__
    env["python"] = platform.python_version()
    settings = {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(cfg).items()}
    summary = {"settings": settings, "figures": figures, "steps": list(timings), "total_seconds": round(total_s, 1),
               "environment": env, "artefacts": []}
    summary["artefacts"] = list_artefacts(out)
    # summary.json is written after this; list it with the size of the document itself.
    if not any(a["name"] == "summary" for a in summary["artefacts"]):
        summary["artefacts"].append({"name": "summary", "path": str(out / "summary.json"), "bytes": None,
                                     "what": "this summary"})
    return summary


def model_classes(trained: Any, export: Any, *, fallback: Sequence[str] = ()) -> list[str]:
    """The classes in the model's order (output index i -> name): the deployed ONNX file's contract
    labels, else the trained checkpoint's. Not the generator's list: training reads class folders
    sorted, so "star" is index 2 of the model although the generator draws it last."""
    from edgecv.contract import read_contract

    output = getattr(export, "output", None)
    contract = read_contract(output) if output and Path(output).is_file() else None
    if contract is not None and contract.labels:
        return list(contract.labels)
    return list(getattr(trained, "classes", None) or fallback)


def val_figures(val: Any) -> dict[str, Any]:
    """The accuracy figures, from ``edgecv val`` on the validation images (fp32 first, then int8)."""
    fp32 = val.models[0]
    int8 = val.models[1] if len(val.models) > 1 else None
    cmp = val.comparison[1] if int8 is not None else {}
    return {"fp32_accuracy": _round(fp32.top1), "fp32_macro_f1": _round(fp32.macro_f1),
            "int8_accuracy": _round(int8.top1) if int8 else None,
            "int8_macro_f1": _round(int8.macro_f1) if int8 else None,
            "val_samples": fp32.samples, "val_int8_vs_fp32": cmp.get("text"),
            "val_recommendation": val.recommendation["text"]}


def _speed_check(int8: Any) -> dict[str, Any] | None:
    """int8 vs fp32 speed as the export measured it (the attempt it kept)."""
    speed = ((int8.details or {}).get("speed") if int8 else None) or None
    if not speed:
        return None
    chosen = speed["attempts"][speed["chosen"]]
    return {"recommended": speed["recommended"], "threads": speed["threads"],
            "speedup": {str(r["batch"]): r["speedup"] for r in chosen["latency"]},
            "excluded_nodes": (chosen.get("excluded") or {}).get("nodes", 0)}


def _int8_warning(export: Any) -> str | None:
    """The export's int8 warnings (slower than fp32, low agreement, failed), joined."""
    lines = [w for w in export.warnings if w.startswith("int8")]
    return " | ".join(lines) if lines else None


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def format_summary(summary: dict[str, Any]) -> str:
    """The table printed at the end of the demo."""
    f = summary["figures"]
    ms = lambda v: "-" if v is None else f"{v:.3f} ms"  # noqa: E731
    figure_rows = [
        {"figure": "validation accuracy",
         "value": f"{_pct(f['val_accuracy'])} (best of {f['epochs']} epochs: epoch {f['best_epoch']}; "
                  f"{f['val_images']} images)"},
        {"figure": "fp32 ONNX vs PyTorch",
         "value": f"{'passed' if f['fp32_parity_passed'] else 'FAILED'}: max |diff| "
                  f"{'-' if f['fp32_max_abs_diff'] is None else format(f['fp32_max_abs_diff'], '.2e')}, "
                  f"top-1 agreement {_pct(f['fp32_top1_agreement'])} on {f['parity_samples']} images"},
        {"figure": "int8 vs PyTorch",
         "value": f"top-1 agreement {_pct(f['int8_top1_agreement'])}, file {_pct(f['int8_size_ratio'])} of fp32; "
                  f"on {f.get('parity_samples')} validation images, calibrated on "
                  f"{f.get('int8_calibration_samples')} other (training) images"},
        {"figure": "edgecv val",
         "value": f"top-1 fp32 {_pct(f['fp32_accuracy'])}, int8 {_pct(f['int8_accuracy'])} "
                  f"(macro F1 {_num(f['fp32_macro_f1'])} / {_num(f['int8_macro_f1'])}) on {f['val_samples']} "
                  f"validation images" + (f"; int8: {f['val_int8_vs_fp32']}" if f.get("val_int8_vs_fp32") else "")},
        {"figure": "recommendation", "value": f["val_recommendation"]},
        *([{"figure": "int8 warning", "value": f["int8_warning"]}] if f.get("int8_warning") else []),
        {"figure": "video stream",
         "value": f"{f['video_frames']} frames at {f['video_fps']:.1f} FPS ({f['stream_model']}), "
                  f"per-frame accuracy {_pct(f['video_frame_accuracy'])}"},
        {"figure": "latency p50, batch 1",
         "value": f"fp32 {ms(f['fp32_p50_ms'])}, int8 {ms(f['int8_p50_ms'])}"
                  + (f" -> int8 {f['int8_speedup']:.2f}x the speed of fp32" if f.get("int8_speedup") else "")},
        {"figure": "total time", "value": f"{summary['total_seconds']:.0f} s ("
                                          + ", ".join(f"{s['step'].split(':')[0].split(' ')[0].lower()} "
                                                      f"{s['seconds']:.0f} s" for s in summary["steps"]) + ")"},
    ]
    artefact_rows = [{"artefact": a["name"], "path": a["path"],
                      "size": _bytes(a["bytes"]) + (f" ({a['files']} files)" if a.get("files") else "")}
                     for a in summary["artefacts"]]
    parts = ["Figures", format_table(figure_rows, [("figure", "figure"), ("value", "value")]), "",
             "Artefacts", format_table(artefact_rows, [("artefact", "artefact"), ("path", "path"), ("size", "size")])]
    return "\n".join(parts)
