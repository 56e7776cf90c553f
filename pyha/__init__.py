"""pyha: a high-availability cluster server and its plugin SDK."""

from pyha.errors import PyhaError

__version__ = "0.1.0"

__all__ = ["PyhaError", "__version__"]
