"""Every use of another library's private API, in one place (and the public Trainer attributes
that Lightning sets without declaring them, so that a type checker cannot see them).

Lightning, TorchRL and W&B offer no public hook for a few things this project needs (a
``last.ckpt`` that is always the latest state, a CSV log that continues, a ``play`` subcommand,
a replay storage that copies column by column). Each private name used for them is either

- a method overridden or called, listed in ``PRIVATE_METHODS`` with the parameters it must
  still take, or
- an attribute read or written, behind one function below.

``tests/test_upstream.py`` checks both against the installed versions, so an upgrade that moves
one fails a test named after it, not a run in the middle of training. ``pyproject.toml`` bounds
each library below the next release this has not been checked with.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch

#: class path -> (private method, the parameter names it must take), for the methods that the
#: project's subclasses override or call.
PRIVATE_METHODS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "lightning.pytorch.cli.LightningCLI": (  # cli.LightningDistillCLI
        ("_add_subcommands", ("self", "parser", "kwargs")),
        ("_parse_ckpt_path", ("self",)),
        ("_instantiate_trainer", ("self", "config", "callbacks")),
        ("_set_seed", ("self",)),
        ("_run_subcommand", ("self", "subcommand")),
    ),
    "lightning.pytorch.callbacks.ModelCheckpoint": (  # checkpointing.ModelCheckpoint
        ("_save_last_checkpoint", ("self", "trainer", "monitor_candidates")),
        ("_monitor_candidates", ("self", "trainer")),
        ("_should_save_on_train_epoch_end", ("self", "trainer")),
    ),
    "lightning.pytorch.loggers.csv_logs.ExperimentWriter": (  # loggers._ContinuingWriter
        ("_check_log_dir_exists", ("self",)),
    ),
    # TorchRL declares ``_empty`` abstract on its Writer and Sampler and calls it from
    # ``ReplayBuffer.empty``: replay.hierarchical's writer and sampler must implement it.
    "torchrl.data.replay_buffers.writers.Writer": (("_empty", ("self", "empty_write_count")),),
    "torchrl.data.replay_buffers.samplers.Sampler": (("_empty", ("self",)),),
    # replay.storage.ColumnStorage and replay.memory.TaskMemory: a TensorDict of tensors that
    # cannot fail its checks (see ``unchecked_tensordict``)
    "tensordict.TensorDict": (
        (
            "_new_unsafe",
            (
                "source",
                "batch_size",
                "device",
                "names",
                "non_blocking",
                "lock",
                "nested",
                "is_shared",
                "is_memmap",
                "kwargs",
            ),
        ),
    ),
}


#: numba's private ``_nrt`` option, off: a kernel compiled without reference counting. The replay
#: index's two hot kernels (``replay.ranks.write`` and ``reprioritise``) only index arrays that
#: Python owns and allocate nothing; with counting on, every call to a helper that takes the
#: index's arrays pays atomic increments and decrements (measured: one remove + insert 195 ns
#: with counting, 60 ns without).
NUMBA_WITHOUT_REFCOUNTS: dict[str, Any] = {"_nrt": False}


def moved_private_methods() -> list[str]:
    """``PRIVATE_METHODS`` entries the installed libraries no longer have as listed."""
    moved = []
    for class_path, methods in PRIVATE_METHODS.items():
        module_name, _, class_name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        for name, params in methods:
            method = getattr(cls, name, None)
            if method is None:
                moved.append(f"{class_path}.{name} is gone")
            elif tuple(inspect.signature(method).parameters) != params:
                moved.append(
                    f"{class_path}.{name} now takes {tuple(inspect.signature(method).parameters)}, not {params}"
                )
    return moved


# -- Lightning --------------------------------------------------------------------------------


def datamodule_of(trainer: Any) -> object:
    """``trainer.datamodule``: an ``object``, for the caller to narrow with ``isinstance`` against
    a Protocol of ``lightning_distill.contracts`` (what it needs of the data module)."""
    return trainer.datamodule


def log_every_n_steps(trainer: Any) -> int:
    """``trainer.log_every_n_steps``."""
    return int(trainer.log_every_n_steps)


def fast_dev_run(trainer: Any) -> bool:
    """Whether the trainer runs Lightning's ``fast_dev_run`` smoke test."""
    return bool(trainer.fast_dev_run)


def process_rank() -> int:
    """This process's global rank, before a Trainer exists (``rank_zero_only.rank``, which
    Lightning sets from the launcher's environment)."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(rank_zero_only.rank)  # type: ignore[attr-defined]


def callbacks_of(trainer: Any) -> list[Any]:
    """``trainer.callbacks``."""
    return list(trainer.callbacks)


def add_subcommand(cli: Any, parser: Any, name: str, subparser: Any) -> None:
    """Register ``subparser`` as subcommand ``name`` of a ``LightningCLI`` (its parser's
    subcommands action, and the CLI's table of subcommand parsers)."""
    cli._subcommand_parsers[name] = subparser
    parser._subcommands_action.add_subcommand(name, subparser, help=subparser.description)


def every_n_train_steps(callback: Any) -> int:
    """A ``ModelCheckpoint``'s ``every_n_train_steps`` as it resolved the argument (0: off)."""
    return int(callback._every_n_train_steps)


def defers_save_until_validation(callback: Any) -> bool:
    """Whether a ``ModelCheckpoint`` moved its step-interval saves to the next validation."""
    return bool(callback._defer_save_until_validation)


def started_experiment(logger: Any) -> Any | None:
    """A logger's experiment (W&B run, CSV writer) if it was created, without creating it
    (``logger.experiment`` would start a W&B run)."""
    return logger._experiment


def wandb_init_kwargs(logger: Any) -> dict[str, Any]:
    """The keyword arguments a ``WandbLogger`` will pass to ``wandb.init`` (editable)."""
    return logger._wandb_init


# -- tensordict -------------------------------------------------------------------------------


def unchecked_tensordict(tensors: dict[str, torch.Tensor], rows: int, device: Any = None) -> Any:
    """``TensorDict(tensors, batch_size=[rows], device=device)`` without its per-entry checks
    (``TensorDict._new_unsafe``). For a replay minibatch only: columns gathered from one storage
    by one index, so each has ``rows`` rows and the storage's device, which is what the checks
    verify. Measured: 3.6 us against 17 us for six entries, a fifth of a whole H-PR draw,
    gather and update at batch 32 (``benchmarks/replay_throughput.py``)."""
    from tensordict import TensorDict

    return TensorDict._new_unsafe(tensors, batch_size=torch.Size([rows]), device=device)


# -- torch ------------------------------------------------------------------------------------


def native_conv2d(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` on PyTorch's own CPU kernel (``thnn_conv2d``, what ``conv2d`` runs with oneDNN
    disabled), without touching the process-wide ``torch.backends.mkldnn.enabled``."""
    return torch._C._nn.thnn_conv2d(  # type: ignore[attr-defined]  # not in the stubs
        x, conv.weight, conv.kernel_size, conv.bias, conv.stride, conv.padding
    )
