"""The biovil model family."""
