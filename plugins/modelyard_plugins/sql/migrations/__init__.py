"""Alembic migrations of the SQL registry (a package so that they ship in the wheel)."""
