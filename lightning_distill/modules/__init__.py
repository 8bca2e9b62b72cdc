"""LightningModules: the agents (networks, losses, optimisers)."""

from lightning_distill.modules.base import RLModule, load_agent
from lightning_distill.modules.distill import Distillation
from lightning_distill.modules.dqn import DQN
from lightning_distill.modules.ppo import PPO

__all__ = ["RLModule", "DQN", "Distillation", "PPO", "load_agent"]
