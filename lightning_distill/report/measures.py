"""What the report measures on one learning curve (a task's % of teacher by update, or a return
by iteration): best, final, area under the curve, and where it first reaches a threshold."""

from __future__ import annotations

import statistics

from lightning_distill.report.collect import Curve


def best(curve: Curve) -> float:
    return max(curve.values())


def final(curve: Curve) -> float:
    return curve[max(curve)]


def area(curve: Curve) -> float:
    """Area under the curve over its x range, as a mean: the mean over evaluations (they are
    evenly spaced), so it reads in the curve's unit (% of teacher)."""
    return statistics.fmean(curve.values())


def first_reach(curve: Curve, threshold: float) -> int | None:
    """The first x (update, iteration) at which the curve is at or above ``threshold``."""
    return next((x for x, value in sorted(curve.items()) if value >= threshold), None)


MEASURES = {"best": best, "final": final, "area under the curve": area}
