"""openmedclip."""
