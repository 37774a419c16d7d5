"""Fixtures of the reliability suite (the helpers live in reliability_support.py)."""

from reliability_support import platform, short_clip  # noqa: F401  (fixtures)
