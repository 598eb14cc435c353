"""``python -m openmedclip.cli ARGS``: the ``openmedclip`` command."""

from openmedclip.cli.app import main

main()
