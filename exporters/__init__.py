"""torch -> ONNX export, simplification, parity verification and quantization; installed as
``edgecv.exporters`` (imports torch)."""
