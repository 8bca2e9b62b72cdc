"""The private APIs of Lightning, TorchRL and W&B that ``lightning_distill.upstream`` fences:
each still exists and behaves as the adapter says, in the installed versions. A failure here
after an upgrade names what moved; fix the adapter, not the callers."""

from __future__ import annotations

import lightning.pytorch  # noqa: F401  (imported at collection: Lightning's logging needs it early)
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage

from lightning_distill import upstream


def test_every_private_method_used_is_still_there_with_the_same_parameters():
    assert upstream.moved_private_methods() == []


def test_a_moved_private_method_is_reported_by_name(monkeypatch):
    monkeypatch.setitem(
        upstream.PRIVATE_METHODS,
        "torchrl.data.replay_buffers.writers.Writer",
        (("_empty", ("self",)), ("_no_such_method", ("self",))),
    )
    moved = upstream.moved_private_methods()
    assert moved == [
        "torchrl.data.replay_buffers.writers.Writer._empty now takes ('self', 'empty_write_count'), not ('self',)",
        "torchrl.data.replay_buffers.writers.Writer._no_such_method is gone",
    ]


def test_numba_compiles_kernels_without_reference_counting_and_refuses_allocation_there():
    import numba
    import numpy as np
    import pytest

    @numba.njit(**upstream.NUMBA_WITHOUT_REFCOUNTS)
    def shift(a):
        for i in range(len(a) - 1, 0, -1):
            a[i] = a[i - 1]

    array = np.arange(4)
    shift(array)
    assert array.tolist() == [0, 0, 1, 2]

    @numba.njit(**upstream.NUMBA_WITHOUT_REFCOUNTS)
    def allocate(n):
        return np.zeros(n).sum()

    with pytest.raises(numba.core.errors.NumbaError):  # allocating needs reference counting
        allocate(3)


def test_model_checkpoint_intervals_read_as_configured():
    from lightning.pytorch.callbacks import ModelCheckpoint

    every = ModelCheckpoint(every_n_train_steps=25)
    assert upstream.every_n_train_steps(every) == 25
    assert upstream.every_n_train_steps(ModelCheckpoint()) == 0
    assert upstream.defers_save_until_validation(every) is False


def test_a_logger_experiment_is_seen_only_once_started(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path)
    assert upstream.started_experiment(logger) is None
    writer = logger.experiment
    assert upstream.started_experiment(logger) is writer


def test_wandb_init_kwargs_are_what_the_logger_passes_to_wandb_init(tmp_path, monkeypatch):
    from lightning_distill.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = WandbLogger(save_dir=tmp_path, project="p", anonymous=None)
    kwargs = upstream.wandb_init_kwargs(logger)
    assert kwargs["project"] == "p" and "anonymous" not in kwargs


def test_the_column_storage_reads_and_writes_what_torchrl_storage_would(monkeypatch):
    """``ColumnStorage`` copies column by column through the TensorDict TorchRL keeps its rows in
    (``LazyTensorStorage._storage``): the same rows as TorchRL's own get and set, and its length."""
    from lightning_distill.replay.storage import ColumnStorage

    rows = TensorDict({"x": torch.arange(16.0).reshape(8, 2), "n": torch.arange(8)}, batch_size=[8])
    ours, torchrls = ColumnStorage(8), LazyTensorStorage(8)
    for storage in (ours, torchrls):
        storage.set(torch.arange(5), rows[:5])  # filling: TorchRL counts the length
        storage.set(torch.tensor([5, 6, 7]), rows[5:])
        storage.set(torch.tensor([1, 3]), rows[6:])  # full: column by column for ours
    assert len(ours) == len(torchrls) == 8
    index = torch.tensor([3, 1, 7, 0])
    expected = torchrls.get(index)

    def torchrl_path(*args, **kwargs):
        raise AssertionError("TorchRL's get, not the columns'")

    monkeypatch.setattr(LazyTensorStorage, "get", torchrl_path)
    assert (ours.get(index) == expected).all()
