"""Alembic revisions of the SQL registry, oldest first: ``0001_initial``, then one file per schema change."""
