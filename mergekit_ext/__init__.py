"""mergekit glue for merge3: the only place that knows mergekit internals (`mergekit-evolve-lite` arrives later)."""
