"""pgshift: move PostgreSQL databases across major versions and between hosts."""

__version__ = "0.1.0"
