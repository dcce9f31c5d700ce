"""Crash points for the interruption tests (issue #13): with MERGE3_CRASH_AT=<point>:<n> in the
environment, the process kills itself with SIGKILL the n-th time it reaches <point> (counted from 1),
exactly as a power cut or the out-of-memory killer would stop it there. Without the variable (always,
outside those tests) a crash point is one dictionary lookup.

Points: `merge` (a candidate's merge, some tensors written), `eval` (its evaluation started),
`history` (a history line half written), `write:<file name>` (a file's new version written beside
it, not yet renamed over it); in a Ray worker, `candidate:<config hash>` (every worker that scores
that candidate) and `candidate:<config hash>:life<n>` (only the n-th worker the backend started)."""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    target = os.environ.get("MERGE3_CRASH_AT")
    if not target:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if target == f"{name}:{_counts[name]}":
        os.kill(os.getpid(), signal.SIGKILL)
