"""modelyard plugin 'server' (being written)."""
