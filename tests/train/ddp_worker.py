"""Started by ``test_ddp`` under torchrun: joins the process group once, then trains each recipe it is given
through the command-line entry (so the group is reused, not re-created, between runs)."""

import sys

import torch.distributed as dist

from openmedclip.train.cli import main

dist.init_process_group("gloo")
codes = [main(["--recipe", recipe]) for recipe in sys.argv[1:]]
dist.destroy_process_group()
sys.exit(max(codes))
