"""The medclip model family."""
