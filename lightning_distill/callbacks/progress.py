"""A progress display for RL runs: what a person watching one wants to see.

Lightning's bar counts batches of an epoch, which means nothing for an endless stream of
experience. ``RLProgress`` counts updates towards ``trainer.max_steps`` (distillation, DQN) or
iterations towards ``trainer.max_epochs`` (PPO / REPAINT), and shows the environment steps
taken, updates per second, the exploration epsilon or the kickstarting weight ``beta_k``, and
the last evaluation. On a terminal it is a live bar; in a log file (a cluster job) it prints
one plain line every ``log_seconds`` instead of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar

import lightning.pytorch as pl
from lightning.pytorch.callbacks.progress import ProgressBar

from lightning_distill.checks import POSITIVE, Range, check_ranges
from lightning_distill.contracts import ExperienceSource
from lightning_distill.upstream import datamodule_of

#: The metrics shown after the counters, first found wins within each group: (label, keys, format).
SHOWN = (
    ("eps", ("train/epsilon",), ".3g"),
    ("beta_k", ("transfer/beta_k",), ".3g"),
    ("kept", ("transfer/kept_fraction",), ".1%"),  # as the run's summary shows it
    ("return", ("train/return", "train/return_100"), ".3g"),
    ("eval", ("eval/geomean_pct_teacher", "eval/return"), ".3g"),
)


def format_count(n: float) -> str:
    """12345 -> 12.3k, 2_500_000 -> 2.50M."""
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e4:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


class RLProgress(ProgressBar):
    """Progress in updates (or iterations), env steps, updates/s (iterations/s), epsilon / beta_k, last evaluation.

    Args:
        refresh_seconds: how often the live bar is redrawn.
        log_seconds: how often a line is printed when the output is not a terminal.
        live: a live bar (``True``) or printed lines (``False``); ``None``: a bar on a terminal.
    """

    RANGES: ClassVar[dict[str, Range]] = {"refresh_seconds": POSITIVE, "log_seconds": POSITIVE}

    def __init__(self, refresh_seconds: float = 0.5, log_seconds: float = 30.0, live: bool | None = None) -> None:
        check_ranges("RLProgress", self.RANGES, locals())
        super().__init__()
        self.refresh_seconds, self.log_seconds, self.live = refresh_seconds, log_seconds, live
        self._enabled = True
        self._bar: Any = None  # a tqdm bar while one is drawn
        self._last_draw = 0.0
        self._last_line = ""
        self._last_done = -1
        self._last_shown: list[str] = []
        self._start = (0.0, 0)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    # -- what is shown -----------------------------------------------------------------------

    @staticmethod
    def counts_iterations(trainer: pl.Trainer) -> bool:
        """PPO runs are sized in iterations (epochs); stream runs in updates (``max_steps``)."""
        return not (trainer.max_steps and trainer.max_steps > 0)

    def position(self, trainer: pl.Trainer) -> tuple[int, int | None, str]:
        """(done, total, unit)."""
        if self.counts_iterations(trainer):
            total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            # an iteration is one batch (one rollout); Lightning counts the epoch done only after
            # the evaluation that follows it, so count the batches
            return trainer.fit_loop.epoch_loop.batch_progress.total.completed, total, "it"
        return trainer.global_step, trainer.max_steps, "upd"

    def status(self, trainer: pl.Trainer) -> str:
        """``env 1.2M · 38.1 upd/s · eps 0.42 · eval 87.3`` (``it/s`` for PPO), from the data module
        and the logged metrics."""
        parts = []
        datamodule = datamodule_of(trainer)
        if isinstance(datamodule, ExperienceSource):  # a documented skip: no env count to show
            parts.append(f"env {format_count(datamodule.env_steps)}")
        elapsed = time.monotonic() - self._start[0]
        done, _, unit = self.position(trainer)
        if elapsed > 0 and done > self._start[1]:
            parts.append(f"{(done - self._start[1]) / elapsed:.{2 if unit == 'it' else 1}f} {unit}/s")
        return " · ".join(parts + self.shown_metrics(trainer))

    @staticmethod
    def shown_metrics(trainer: pl.Trainer) -> list[str]:
        """``eps 0.42``, ``beta_k 0.9``, ``eval 87.3``...: the last logged values of ``SHOWN``."""
        metrics = trainer.callback_metrics
        parts = []
        for label, keys, spec in SHOWN:
            value = next((metrics[k] for k in keys if k in metrics), None)
            if value is not None:
                parts.append(f"{label} {float(value):{spec}}")
        return parts

    def line(self, trainer: pl.Trainer) -> str:
        done, total, unit = self.position(trainer)
        counter = f"{done}/{total} {unit}" if total else f"{done} {unit}"
        return f"{counter} · {self.status(trainer)}"

    # -- drawing -----------------------------------------------------------------------------

    def _draw(self, trainer: pl.Trainer, force: bool = False, final: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if self._bar is not None:
            if force or now - self._last_draw >= self.refresh_seconds:
                done, _, _ = self.position(trainer)
                self._bar.n = done
                self._bar.set_postfix_str(self.status(trainer), refresh=False)
                self._bar.refresh()
                self._last_draw = now
        elif force or now - self._last_draw >= self.log_seconds:
            line, done, shown = self.line(trainer), self.position(trainer)[0], self.shown_metrics(trainer)
            if line != self._last_line and not (final and (done, shown) == (self._last_done, self._last_shown)):
                print(line, flush=True)  # the end of training right after an evaluation: said once
                self._last_line, self._last_done, self._last_shown = line, done, shown
            self._last_draw = now

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = (time.monotonic(), self.position(trainer)[0])
        self._last_draw = time.monotonic()
        if self._enabled and (sys.stdout.isatty() if self.live is None else self.live):
            from tqdm.auto import tqdm

            done, total, unit = self.position(trainer)
            self._bar = tqdm(
                total=total,
                initial=done,
                unit=unit,
                dynamic_ncols=True,
                file=sys.stdout,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}{postfix}]",
            )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._draw(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """PPO counts iterations (epochs): drawn when the next one starts, as an epoch's metrics
        reach ``callback_metrics`` only after every ``on_train_epoch_end`` hook has run."""
        if self.counts_iterations(trainer) and self.position(trainer)[0] > self._start[1]:
            self._draw(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # iterations: the evaluation ends before its iteration's metrics are in; the next draw shows both
        if trainer.state.fn == "fit" and not self.counts_iterations(trainer):
            self._draw(trainer, force=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, force=True, final=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.write(" ".join(map(str, args)))
        else:
            print(*args, **kwargs)
