"""Candidates that fail: a merge that raises, weights or logits that are NaN/Inf, an evaluation that
runs out of memory. One such candidate must not end a run of hours: it is recorded in the history as
failed, with its reason and no objectives (pymoo sees the worst value), and the run goes on. The live
model needs no repair: the next merge writes every one of its weights (`merge_into` checks).
When most of a generation fails, something is wrong with the run itself (ranges that produce
NaN, a model too large for the device), and the run stops with a report instead of burning its budget.
"""

from __future__ import annotations

import gc
import traceback
from pathlib import Path

from merge3_plugin.errors import UserError

# A generation stops the run when more than this share of its candidates failed (and at least two did)
STOP_SHARE = 0.5


class CandidateFailed(Exception):
    """A candidate that cannot be scored, for a reason of its own (not a bug, not bad input)."""


class GenerationFailed(Exception):
    """Most of a generation failed: the run stops (the CLI exits 3 with this message)."""


def probe_logits(model) -> None:
    """One forward pass over 16 fixed tokens: NaN or Inf anywhere in the weights shows up here, before an
    evaluation spends minutes on a broken model (lm-eval would score it without complaint)."""
    import torch

    ids = (torch.arange(1, 17, device=model.device) % model.config.vocab_size).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise CandidateFailed("the merged model's logits are NaN or Inf (non-finite merged weights)")


def is_candidate_failure(err: BaseException) -> bool:
    """What a candidate may fail with and the run survive: anything but bad input and interruption."""
    return isinstance(err, Exception) and not isinstance(err, (UserError, GenerationFailed))


def reason_of(err: BaseException) -> str:
    import torch

    if isinstance(err, CandidateFailed):
        return str(err)
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return f"out of memory ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
    text = str(err).splitlines()[0][:300] if str(err) else ""
    return f"{type(err).__name__}: {text}"


def recover(err: BaseException, key: str) -> tuple[str, str]:
    """After a candidate failed: free what the failure left behind, and return the one-line reason for
    the history and the traceback for failures.log (written by the driver, which may be elsewhere)."""
    import torch

    logged = f"--- candidate {key}\n{''.join(traceback.format_exception(err))}\n"
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return reason_of(err), logged


class GenerationWatch:
    """Counts a generation's candidates and failures; stops the run when most of a generation failed."""

    def __init__(self):
        self.asked = 0
        self.reasons: list[str] = []

    def record(self, failed_reason: str | None) -> None:
        self.asked += 1
        if failed_reason is not None:
            self.reasons.append(failed_reason)

    def end_generation(self, generation: int, history: Path) -> None:
        asked, failed = self.asked, len(self.reasons)
        reasons = sorted(set(self.reasons), key=self.reasons.index)
        self.asked, self.reasons = 0, []
        if failed >= 2 and failed > STOP_SHARE * asked:
            shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
            raise GenerationFailed(
                f"{failed} of {asked} candidates of generation {generation} failed ({shown}); stopping instead "
                f"of spending the budget on more. Every candidate so far is in {history} (failed ones with their "
                f"reason, tracebacks in {history.with_name('failures.log')}); fix the cause and continue with "
                "--resume (failed candidates are evaluated again)")
