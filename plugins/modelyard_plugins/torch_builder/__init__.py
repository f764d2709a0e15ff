"""modelyard plugin 'torch_builder' (being written)."""
