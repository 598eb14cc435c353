"""Command-line interface (typer). Commands parse arguments, call the library and render results.

Only typer, the standard library and light openmedclip modules are imported before a command runs.
"""
