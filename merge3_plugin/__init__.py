"""merge3: extract anchor items, estimate full-benchmark accuracy with IRT, evolve merges."""

__version__ = "0.1.0"
