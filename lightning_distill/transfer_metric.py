"""REPAINT's metric (spec section 6): iterations ``K`` to a target score, and "pct. reduced".

``K`` is the first iteration at which ``train/return``, the moving average of the student's
last training episodes (``data.return_window`` of them), reaches the target score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def iterations_to_target(returns: Sequence[float], target: float) -> int | None:
    """``K`` (1-based: iterations trained) from the per-iteration ``train/return`` (NaN before the
    first episode ends); ``None`` when the target is never reached."""
    for k, value in enumerate(returns, start=1):
        if value is not None and not math.isnan(value) and value >= target:
            return k
    return None


def pct_reduced(k_method: int | None, k_baseline: int | None) -> float | None:
    """``1 - K_method / K_baseline``; ``None`` when either never reached the target."""
    if k_method is None or k_baseline is None:
        return None
    return 1.0 - k_method / k_baseline
