"""One progress bar on the console: what other libraries print goes to a log file.

lm-eval, transformers, datasets and mergekit each print their own progress bars and warnings
("Loading weights", "Running generate_until requests", kwarg notices) once per candidate; over a
search they bury the one bar that matters. While a long job runs, file descriptors 1 and 2 point at a log
file, so Python's sys.stdout/sys.stderr, C extensions, logging handlers and child processes land
there (the stream objects stay the same: handlers bound to them keep working afterwards); the job's own bar and messages write to the terminal
stream this hands out. Everything is put back on the way out, also on an error, so error messages
and tracebacks reach the terminal; a log that stayed empty is removed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def libraries_to_log(path: Path) -> Iterator[IO[str]]:
    """Inside, everything printed goes to `path` (appended); yields a stream to the real terminal."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    path = Path(path)
    existed = path.exists()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace", buffering=1)
    log = open(path, "a", encoding="utf-8", errors="replace", buffering=1)
    crashes = faulthandler.is_enabled()
    try:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        faulthandler.enable(file=terminal)  # a hard crash's stack still reaches the terminal
        yield terminal
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if crashes:
            faulthandler.enable(file=sys.__stderr__)
        else:
            faulthandler.disable()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        terminal.close()
        log.close()
        if not existed and path.stat().st_size == 0:  # nothing was said: no empty file left behind
            path.unlink()
