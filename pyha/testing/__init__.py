"""Fakes shipped for tests of pyha and of plugins: fake clock, dummy plugin, harnesses."""

from pyha.testing.clock import FakeClock

__all__ = ["FakeClock"]
