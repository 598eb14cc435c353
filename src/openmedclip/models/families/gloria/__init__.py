"""The gloria model family."""
