"""An SB3 teacher's ``VecNormalize`` statistics, read from its pickle without running it.

RL Zoo trains its MuJoCo agents behind ``VecNormalize`` and saves the wrapper with
``pickle.dump`` as ``vec_normalize.pkl`` beside the model (RL Zoo's own logs keep it as
``<model stem>/vecnormalize.pkl``). Without those statistics the teacher sees raw observations
and acts on the wrong inputs. The file is a pickle from a stranger, so it is read with an
unpickler that builds nothing but numpy arrays and scalars: the wrapper, its ``RunningMeanStd``
and its gymnasium spaces become inert records of their fields (no class of theirs is imported,
no ``__setstate__`` of theirs runs), and any other global refuses the file with one line.
"""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_distill.errors import CheckpointError

#: numpy's array and scalar reconstructors (numpy 2 names them ``numpy._core``, numpy 1 ``numpy.core``)
NUMPY_GLOBALS = {
    (module, name)
    for module in ("numpy._core.multiarray", "numpy.core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}
#: classes whose objects are read as records of their fields
RECORD_GLOBALS = {
    ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"),
    ("stable_baselines3.common.running_mean_std", "RunningMeanStd"),
    *(
        (f"{package}.spaces.{name.lower()}", name)
        for package in ("gymnasium", "gym")
        for name in ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict")
    ),
}
#: a seeded space pickles its random generator: read as a record too (it is never used)
GENERATOR_GLOBALS = (
    {("numpy.random._pickle", name) for name in ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor")}
    | {(f"numpy.random._{name.lower()}", name) for name in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")}
    | {("numpy.random.bit_generator", name) for name in ("SeedSequence", "__pyx_unpickle_SeedSequence")}
)
#: where an SB3 model's statistics are looked for, relative to its ``.zip``
STATS_FILES = ("vec_normalize.pkl", "{stem}/vecnormalize.pkl")


class Record:
    """The fields of a pickled object, and nothing of its class."""

    fields: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fields = {}

    def __setstate__(self, state: Any) -> None:
        self.fields = state if isinstance(state, dict) else {}


def _numpy_global(name: str) -> Any:
    try:
        return getattr(importlib.import_module("numpy._core.multiarray"), name)
    except ImportError:  # numpy 1
        return getattr(importlib.import_module("numpy.core.multiarray"), name)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowed ones: it would build or run something else."""


class StatsUnpickler(pickle.Unpickler):
    """Builds numpy arrays, scalars and plain containers; SB3's and gymnasium's objects as ``Record``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in NUMPY_GLOBALS:
            return getattr(np, name) if module == "numpy" else _numpy_global(name)
        if (module, name) in RECORD_GLOBALS:
            return type(name, (Record,), {})
        if (module, name) in GENERATOR_GLOBALS:
            return Record  # called with the generator's arguments, which it ignores
        raise RefusedGlobal(f"global {module}.{name} is not allowed")


@dataclass(frozen=True)
class ObsStats:
    """What a teacher needs of ``VecNormalize``: the observations' running moments and the clip."""

    mean: np.ndarray
    var: np.ndarray
    count: float
    clip_obs: float
    epsilon: float


def find_stats_file(model: Path) -> Path | None:
    """The ``VecNormalize`` pickle beside an SB3 ``.zip``, if there is one: ``vec_normalize.pkl``,
    ``<stem>/vecnormalize.pkl``, or the only ``*/vecnormalize.pkl`` of the folder (RL Zoo's
    ``best_model.zip`` shares ``<env id>/vecnormalize.pkl`` with ``<env id>.zip``)."""
    for pattern in STATS_FILES:
        candidate = model.parent / pattern.format(stem=model.stem)
        if candidate.is_file():
            return candidate
    others = sorted(model.parent.glob("*/vecnormalize.pkl"))
    return others[0] if len(others) == 1 else None


def read_obs_stats(path: Path) -> ObsStats | None:
    """The observation statistics of a ``VecNormalize`` pickle (``None`` if it did not normalise
    observations), read with ``StatsUnpickler``; anything else in the file refuses it unread."""
    try:
        with open(path, "rb") as f:
            wrapper = StatsUnpickler(f).load()
    except RefusedGlobal as exc:
        raise CheckpointError(f"{str(path)!r} is not plain VecNormalize statistics; refused unread ({exc})") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise CheckpointError(f"{str(path)!r} is not a readable VecNormalize pickle: {exc}".splitlines()[0]) from None
    if type(wrapper).__name__ != "VecNormalize" or not isinstance(wrapper, Record):
        raise CheckpointError(f"{str(path)!r} holds a {type(wrapper).__name__}, not SB3's VecNormalize")
    fields = wrapper.fields
    if not fields.get("norm_obs", False):
        return None
    rms = fields.get("obs_rms")
    if not isinstance(rms, Record) or not isinstance(rms.fields.get("mean"), np.ndarray):
        raise CheckpointError(
            f"{str(path)!r}: only VecNormalize of one observation array is supported (not Dict observation spaces)"
        )
    return ObsStats(
        mean=rms.fields["mean"],
        var=rms.fields["var"],
        count=float(rms.fields["count"]),
        clip_obs=float(fields.get("clip_obs", 10.0)),
        epsilon=float(fields.get("epsilon", 1e-8)),
    )
