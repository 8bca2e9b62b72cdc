"""LightningModules: the agents (networks, losses, optimisers)."""

from lightning_distill.modules.base import RLModule, load_agent
from lightning_distill.modules.dqn import DQN

__all__ = ["RLModule", "DQN", "load_agent"]
