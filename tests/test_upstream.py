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


def test_storage_adapters_read_and_set_what_the_replay_writer_relies_on():
    storage = LazyTensorStorage(8)
    assert upstream.storage_tensors(storage) is None
    storage.set(torch.arange(3), TensorDict({"x": torch.ones(3)}, batch_size=[3]))
    assert set(upstream.storage_tensors(storage).keys()) == {"x"} and len(storage) == 3
    upstream.set_storage_length(storage, 8)
    assert len(storage) == 8
    upstream.set_last_cursor(storage, torch.tensor([5]))
    assert int(storage._last_cursor) == 5


def test_the_replay_writer_reaches_the_storage_its_buffer_registered():
    from lightning_distill.replay import UniformReplay

    buffer = UniformReplay(capacity=4).make_buffer(task=None, teacher=None, batch_size=2)
    assert buffer.writer.storage is buffer.storage
