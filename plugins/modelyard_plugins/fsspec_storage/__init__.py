"""modelyard plugin 'fsspec_storage' (being written)."""
