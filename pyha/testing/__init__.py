"""Fakes shipped for tests of pyha and of plugins: fake clock, dummy plugin, harnesses."""

from pyha.testing.clock import FakeClock
from pyha.testing.dummy import DummyPlugin, clear_knobs, set_knobs

__all__ = ["DummyPlugin", "FakeClock", "clear_knobs", "set_knobs"]
