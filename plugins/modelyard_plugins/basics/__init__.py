"""modelyard plugin 'basics' (being written)."""
