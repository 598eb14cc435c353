"""Tasks built on encoded features: zero-shot classification (probe, retrieval and heat maps follow)."""
