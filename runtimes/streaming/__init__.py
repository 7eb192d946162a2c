"""Sources and the stream loop: images, folders, video files, cameras and network streams, one or
many, read by capture threads that keep only the newest live frame, classified in batches, with
overlays, output sinks and per-stream reports."""
from __future__ import annotations
