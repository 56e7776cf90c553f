"""The bundled dummy plugin; it lives in pyha.testing so tests can import it directly."""

from pyha.testing.dummy import DummyPlugin

__all__ = ["DummyPlugin"]
