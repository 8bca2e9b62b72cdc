"""lightning_distill: knowledge transfer for deep RL (policy distillation with hierarchical
prioritized replay, and REPAINT) on PyTorch Lightning.

Kept import-light: ``python -m lightning_distill --help`` must not pull in torchrl, wandb or mujoco.
"""

import os

__version__ = "0.9.0"

# torchrl logs every storage it allocates at INFO, with colour codes even into log files
os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")
