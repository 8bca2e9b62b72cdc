"""lightning_distill: knowledge transfer for deep RL (policy distillation with hierarchical
prioritized replay, and REPAINT) on PyTorch Lightning.

Kept import-light: ``python -m lightning_distill --help`` must not pull in torchrl, wandb or mujoco.
"""

__version__ = "0.1.0"
