"""Tasks built on encoded features: zero-shot classification, linear probes, retrieval."""
