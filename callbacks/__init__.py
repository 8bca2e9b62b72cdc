"""Lightning callbacks of lightning_distill (installed as the top-level package ``callbacks``)."""

from callbacks.exploration import EpsilonSchedule

__all__ = ["EpsilonSchedule"]
