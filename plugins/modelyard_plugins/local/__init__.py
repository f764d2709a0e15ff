"""The embedded in-process runtime and scheduler."""
