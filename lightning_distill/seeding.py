"""Seed offsets, in one module that data modules and modules both import.

- ``RANK_SEED_STRIDE``: under DDP, rank ``r`` seeds its envs, exploration, replay sampling and
  its share of each evaluation at ``seed + r * RANK_SEED_STRIDE``, so every rank owns its own
  experience and rank 0 of a multi-GPU run acts as a single-process run would.
- ``TEACHER_SEED_OFFSET``: REPAINT's teacher rollouts step envs seeded apart from the student's.
"""

RANK_SEED_STRIDE = 1_000_003
TEACHER_SEED_OFFSET = 10_000
