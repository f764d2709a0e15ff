"""modelyard plugin 'tensorflow_builder' (being written)."""
