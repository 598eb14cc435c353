"""``python -m openmedclip.train`` / ``torchrun --nproc_per_node N -m openmedclip.train``: ``openmedclip train``."""

import sys

from openmedclip.train.cli import main

sys.exit(main())
