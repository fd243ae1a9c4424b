"""omnitag-export: RAM++ / CLIP checkpoints -> an Omnitag model pack (ONNX + vocabulary)."""
__version__ = "0.1.0"
