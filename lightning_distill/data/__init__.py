"""Data modules: they own the environments, the acting side and the replay."""

from lightning_distill.data.base import RLDataModule
from lightning_distill.data.distill import DistillDataModule
from lightning_distill.data.dqn import DQNDataModule
from lightning_distill.data.rollout import RolloutDataModule

__all__ = ["RLDataModule", "DQNDataModule", "DistillDataModule", "RolloutDataModule"]
