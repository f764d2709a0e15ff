"""modelyard plugin 'secrets' (being written)."""
