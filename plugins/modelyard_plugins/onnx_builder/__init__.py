"""modelyard plugin 'onnx_builder' (being written)."""
