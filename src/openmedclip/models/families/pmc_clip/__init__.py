"""The pmc_clip model family."""
