"""Conformance kits: reusable test suites that every provider of a slot runs against itself (STYLE 19).

One module per slot, imported by a plugin's tests — first-party and third-party alike. Each offers a base class
to subclass as ``Test…`` with one fixture that opens the provider under test:

- :mod:`modelyard.testing.registry` — ``RegistryConformance`` for the ``registry`` slot;
- :mod:`modelyard.testing.storage` — ``StorageConformance`` for the ``storage`` slot;
- :mod:`modelyard.testing.secrets` — ``SecretStoreConformance`` for the ``secrets`` slot.

The kits import pytest and hypothesis (the ``test`` extra); importing this package imports neither.
"""
