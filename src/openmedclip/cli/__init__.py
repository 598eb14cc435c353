"""Command-line interface (typer). Commands parse arguments, call the library and render results."""
