"""xAPI 1.0.3 / 2.0 Learning Record Store."""

__version__ = "0.1.0"
