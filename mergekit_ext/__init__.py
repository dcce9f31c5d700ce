"""The evolve room of merge3: `mergekit-evolve-lite` (config, search spaces, algorithms, in-memory
merger, fitness, engine, search, outputs). The only package that knows mergekit and pymoo;
mergekit's private APIs live in `compat.py`."""
