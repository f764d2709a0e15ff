"""modelyard plugin 'sql' (being written)."""
