"""modelyard plugin 'sklearn_builder' (being written)."""
