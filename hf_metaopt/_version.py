"""The package version, below every other module so that any layer may read it without importing the root."""

__version__ = "0.1.0"
