"""Lightning's CSV and W&B loggers, as a run that is resumed, swept or switched off needs them.

- ``CSVLogger`` continues an existing run's ``metrics.csv`` (Lightning's deletes it), and
  writes values logged as float32 as the number that was logged (``437.4``, not
  ``437.3999938964844``).
- ``WandbLogger`` lets ``WANDB_MODE`` win over the config's ``offline``, in both directions,
  as W&B documents (a sweep agent runs ``env WANDB_MODE=online ...``; ``WANDB_MODE=disabled``
  starts no run at all); it keeps W&B's console quiet and says in one line where the run is.

``run_identity`` is what a checkpoint records of its run (rows of ``metrics.csv``, W&B run
id), so that ``--ckpt_path`` continues the same run (``lightning_distill/runs.py``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_info

from lightning_distill.errors import ConfigError
from lightning_distill.upstream import process_rank, started_experiment, wandb_init_kwargs

WANDB_MODES = ("online", "offline", "disabled")


def as_logged(value: Any) -> Any:
    """A float that is exactly a float32 (Lightning reduces metrics in float32) as the shortest
    decimal that reads back as the same float32: what was logged, without the float noise."""
    if isinstance(value, float) and np.isfinite(value) and float(np.float32(value)) == value:
        return float(str(np.float32(value)))
    return value


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {key: as_logged(value) for key, value in metrics.items()}


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted."""

    def __init__(self, log_dir: str) -> None:
        self.rows = 0
        self.last_step = -1  # the largest ``step`` written
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes the file here
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.metrics_keys = list(reader.fieldnames or [])
                for row in reader:
                    self.rows += 1
                    self.last_step = max(self.last_step, _int_or(row.get("step"), -1))

    def save(self) -> None:
        pending = self.metrics
        super().save()
        self.rows += len(pending)
        self.last_step = max([self.last_step, *(_int_or(row.get("step"), -1) for row in pending)])


def _int_or(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger`` (same arguments): ``save_dir/name/version_<n>/metrics.csv``.

    Two differences: given the ``version`` of an existing run (what ``--ckpt_path`` resuming
    does), it appends to that run's ``metrics.csv`` instead of deleting it; and float32
    metrics are written as the value logged."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _ContinuingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return cast(_ContinuingWriter, self._experiment)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        super().log_metrics(clean_metrics(metrics), step)

    def written(self) -> tuple[int, int]:
        """Data rows in ``metrics.csv`` now (pending ones are written first), and the largest step."""
        self.save()
        return self.experiment.rows, self.experiment.last_step


def wandb_mode(offline: bool) -> str:
    """``WANDB_MODE`` when it is set (it wins, as W&B documents), else the config's ``offline``."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if not mode:
        return "offline" if offline else "online"
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)
    if mode not in WANDB_MODES:
        raise ConfigError(f"WANDB_MODE={os.environ['WANDB_MODE']!r} is not a W&B mode; valid: {', '.join(WANDB_MODES)}")
    return mode


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` (same arguments) where ``WANDB_MODE`` decides over ``offline``.

    ``offline: true`` in a config is the default for a run started by hand; ``WANDB_MODE=online``
    (a sweep agent) streams instead, and ``WANDB_MODE=disabled`` creates no run and no folder.
    W&B's own console lines are silenced (``settings.silent``); the logger prints one line that
    says where the run is. A resumed run passes its stored ``id`` and continues that W&B run."""

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | Path = ".",
        version: str | None = None,
        offline: bool = False,
        dir: str | Path | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: Literal["all"] | bool = False,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.mode = wandb_mode(offline)
        if self.mode == "offline" and log_model:
            raise ConfigError(f"WandbLogger log_model={log_model!r} needs an online run (WANDB_MODE={self.mode})")
        # the CLI fills every wandb.init keyword it knows of with None: only the ones set go on
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        kwargs.setdefault("settings", {"silent": True})
        os.makedirs(dir or save_dir, exist_ok=True)  # W&B looks for the git root from there
        super().__init__(
            name=name,
            save_dir=save_dir,
            version=version,
            offline=False,
            dir=dir,
            id=id,
            anonymous=anonymous,
            project=project,
            log_model=log_model,
            prefix=prefix,
            checkpoint_name=checkpoint_name,
            mode=self.mode,
            **kwargs,
        )
        if anonymous is None:  # W&B warns about the key even when it is None
            wandb_init_kwargs(self).pop("anonymous", None)
        self._announced = False

    @property
    def experiment(self) -> Any:
        try:
            return super().experiment
        except Exception as exc:  # no account, no network, a bad entity: say so in one line
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"W&B could not start an {self.mode} run ({reason}); set WANDB_MODE=offline to "
                "log locally and `wandb sync` later, or WANDB_MODE=disabled"
            ) from None

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Lightning's, then one line that says where the run is: here, once the run has set up
        (a run that fails before this leaves no W&B run behind, so it names none)."""
        super().log_hyperparams(params, *args, **kwargs)
        if self._announced or self.mode == "disabled" or process_rank() != 0:
            return
        self._announced = True
        run = self.experiment
        if self.mode == "offline":
            folder = Path(run.dir).parent
            rank_zero_info(f"W&B: offline run in {folder} (upload it with `wandb sync {folder}`)")
        else:
            rank_zero_info(f"W&B: {getattr(run, 'url', None) or run.id}")

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        super().log_metrics(clean_metrics(metrics), step)


def run_identity(loggers: list) -> dict[str, Any]:
    """What a checkpoint records of its run: the rows ``metrics.csv`` held when it was written and
    their largest step (a resume keeps those, and the rows of that step logged after the
    checkpoint, and drops the rest, which the resumed run logs again), and the W&B run id."""
    identity: dict[str, Any] = {}
    if process_rank() != 0:  # only rank 0 writes checkpoints and logs
        return identity
    for logger in loggers:
        if isinstance(logger, CSVLogger) and "metrics_rows" not in identity:
            identity["metrics_rows"], identity["metrics_step"] = logger.written()
        elif isinstance(logger, LightningWandbLogger) and "wandb_id" not in identity:
            if started_experiment(logger) is not None and getattr(logger, "mode", "online") != "disabled":
                identity["wandb_id"] = logger.version
    return identity
