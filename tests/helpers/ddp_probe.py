"""A callback for the DDP tests (imported by class path in the launched processes): each rank
writes its final weights and a fingerprint of the experience it trained on to $DDP_PROBE_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import torch


class DDPProbe(pl.Callback):
    def __init__(self) -> None:
        self.batches: list[float] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        obs = batch["student"]["obs"] if isinstance(batch, dict) or hasattr(batch, "keys") else batch[0]["obs"]
        self.batches.append(float(obs.float().sum()))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        weights = torch.cat([p.detach().flatten().cpu() for p in pl_module.parameters()])
        out = Path(os.environ["DDP_PROBE_DIR"])
        torch.save(
            {
                "world_size": trainer.world_size,
                "global_step": trainer.global_step,
                "weights": weights,
                "batches": self.batches,
                "env_steps": trainer.datamodule.env_steps,
            },
            out / f"rank{trainer.global_rank}.pt",
        )
