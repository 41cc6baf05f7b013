"""The embedded default's data: a generated mini universe in the Hub datasets' schema."""

from .build import build_mini_universe

__all__ = ["build_mini_universe"]
