"""The lm-eval room's own error, in a module without lm-eval so that callers can catch it cheaply."""


class Merge3ConfigError(ValueError):
    """A merge3 task that cannot load: says which task, which file and what to do."""
