"""H-PR's storage layout (spec section 6, steps 1-2): partitions by the teacher's state value,
each its own FIFO memory.

One TorchRL storage of ``partitions * capacity`` slots; partition ``j`` owns the slots
``[j * capacity, (j + 1) * capacity)`` and writes them round-robin, so each partition evicts
its own oldest experience and no other. The sampler reads an experience's partition back from
its slot (``slot // capacity``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchrl.data.replay_buffers.writers import Writer

from lightning_distill.errors import ConfigError
from lightning_distill.upstream import set_last_cursor, set_storage_length, writer_storage


def check_layout(saved: tuple[int, ...], mine: tuple[int, ...]) -> None:
    """A saved replay fits only a replay of the same partitions x capacity (and window)."""
    if tuple(saved) != tuple(mine):

        def show(layout):
            return f"{layout[0]} partitions x {layout[1]}" + (f" (window {layout[2]})" if len(layout) > 2 else "")

        raise ConfigError(
            f"saved replay has {show(saved)}, this one {show(mine)}: resume with the same replay settings"
        )


class PartitionWriter(Writer):
    """Writes each experience into the FIFO of the partition its ``value`` falls in.

    ``[V_min, V_max]`` is split evenly into ``partitions`` ranges ``[V_1, V_2], (V_2, V_3], ...,
    (V_p, V_p+1]``; a value outside the range goes to the nearest end partition. With
    ``partitions=1`` this is a plain FIFO memory of ``capacity`` experiences.

    Args:
        partitions: ``p``, the number of partitions (the paper: 5).
        capacity: experiences per partition (the paper: 200,000).
        value_range: ``(V_min, V_max)``, measured by playing the teacher; ignored when
            ``partitions == 1``.
        value_key: the entry of the written data that holds ``V(s)``.
    """

    def __init__(
        self, partitions: int, capacity: int, value_range: tuple[float, float] | None = None, value_key: str = "value"
    ) -> None:
        super().__init__()
        if partitions < 1 or capacity < 1:
            raise ConfigError(f"partitions and capacity must be >= 1, got {partitions} and {capacity}")
        if partitions > 1:
            if value_range is None or not all(math.isfinite(v) for v in value_range):
                raise ConfigError(
                    f"{partitions} partitions need a finite value range (V_min, V_max), got {value_range}"
                )
            if value_range[1] < value_range[0]:
                raise ConfigError(f"value range needs V_min <= V_max, got {value_range}")
        self.partitions = partitions
        self.capacity = capacity
        self.value_range = (float(value_range[0]), float(value_range[1])) if value_range is not None else None
        self.value_key = value_key
        self._cursor = np.zeros(partitions, dtype=np.int64)  # next offset to write, per partition
        self.sizes = np.zeros(partitions, dtype=np.int64)  # experiences stored, per partition
        self._write_count = 0
        self._readable = 0  # the storage's length as last set

    @property
    def storage(self) -> Any:
        """The TorchRL storage this writer fills."""
        return writer_storage(self)

    @property
    def stored(self) -> int:
        """Experiences in the memory (with partitions, the storage's length is its capacity)."""
        return int(self.sizes.sum())

    def partition_of(self, values: np.ndarray) -> np.ndarray:
        """The partition of each state value: ``j`` such that ``V`` lies in ``(V_j, V_j+1]``
        (the first range closed on the left), clamped to ``[0, p - 1]``."""
        values = np.asarray(values, dtype=np.float64)
        if self.partitions == 1:
            return np.zeros(values.shape, dtype=np.int64)
        assert self.value_range is not None  # the constructor requires one for partitions > 1
        low, high = self.value_range
        width = (high - low) / self.partitions
        if width <= 0:  # a constant teacher value: below or at it -> first, above -> last
            return np.where(values > low, self.partitions - 1, 0).astype(np.int64)
        scaled = np.nan_to_num((values - low) / width, nan=0.0, posinf=self.partitions, neginf=0.0)
        return np.clip(np.ceil(scaled).astype(np.int64) - 1, 0, self.partitions - 1)

    def slots_for(self, parts: np.ndarray) -> np.ndarray:
        """Assign slots to a batch whose experiences go to ``parts``, in order, advancing each
        partition's cursor (at most ``capacity`` experiences of one partition per call)."""
        onehot = parts[:, None] == np.arange(self.partitions)[None, :]
        counts = onehot.sum(axis=0)
        nth = np.cumsum(onehot, axis=0)[np.arange(len(parts)), parts] - 1  # rank within its partition
        offsets = (self._cursor[parts] + nth) % self.capacity
        self._cursor = (self._cursor + counts) % self.capacity
        self.sizes = np.minimum(self.sizes + counts, self.capacity)
        return parts * self.capacity + offsets

    def place(self, values: np.ndarray) -> np.ndarray:
        """The slots of new experiences with state values ``values``, in order: each goes to the
        next slot of its partition's FIFO. When one call brings more than a partition holds, a
        slot is given twice and the later experience wins (see ``extend``)."""
        self._write_count += len(values)
        if self.partitions == 1 and len(values) <= self.capacity:  # one FIFO: the next slots round
            slots = (self._cursor[0] + np.arange(len(values))) % self.capacity
            self._cursor[0] = (self._cursor[0] + len(values)) % self.capacity
            self.sizes[0] = min(self.sizes[0] + len(values), self.capacity)
            return slots
        parts = self.partition_of(values)
        return np.concatenate(
            [self.slots_for(parts[start : start + self.capacity]) for start in range(0, len(parts), self.capacity)]
        )

    def mark_written(self, index: torch.Tensor) -> None:
        """Keep the storage's length and cursor in step after the slots ``index`` were written."""
        set_last_cursor(self.storage, index)
        # TorchRL reads slots [0, len(storage)): a single FIFO's written prefix; with partitions,
        # every slot (each partition fills from its own start; slicing would cost ~25 us a read)
        if self._readable < self.storage.max_size:
            self._readable = self.storage.max_size if self.partitions > 1 else int(self.sizes[0])
            set_storage_length(self.storage, self._readable)

    @staticmethod
    def last_writes(slots: np.ndarray) -> np.ndarray:
        """Positions in ``slots`` to keep: each slot's last write (a batch larger than a
        partition gives a slot twice, and the later experience wins)."""
        _, last = np.unique(slots[::-1], return_index=True)
        return np.sort(len(slots) - 1 - last)

    def extend(self, data) -> torch.Tensor:
        values = data[self.value_key].detach().cpu().numpy().reshape(len(data))
        slots = self.place(values)
        if len(slots) > self.capacity:  # a slot written twice: keep its last experience only
            keep = self.last_writes(slots)
            data, slots = data[torch.as_tensor(keep)], slots[keep]
        index = torch.as_tensor(slots)
        self.storage.set(index, data, set_cursor=False)  # the length is ours to keep
        self.mark_written(index)
        return index

    def add(self, data) -> int:
        return int(self.extend(data.unsqueeze(0))[0])

    def _empty(self, empty_write_count: bool = True) -> None:
        self._cursor[:] = 0
        self.sizes[:] = 0
        self._readable = 0
        if empty_write_count:
            self._write_count = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "cursor": self._cursor.tolist(),
            "sizes": self.sizes.tolist(),
            "write_count": self._write_count,
            "partitions": self.partitions,
            "capacity": self.capacity,
            "value_range": self.value_range,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_layout((state_dict["partitions"], state_dict["capacity"]), (self.partitions, self.capacity))
        self._cursor = np.asarray(state_dict["cursor"], dtype=np.int64)
        self.sizes = np.asarray(state_dict["sizes"], dtype=np.int64)
        self._write_count = int(state_dict["write_count"])
        self._readable = 0  # set again at the next write
        value_range = state_dict["value_range"]
        self.value_range = tuple(value_range) if value_range is not None else None

    def dumps(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "writer.json").write_text(json.dumps(self.state_dict()))

    def loads(self, path) -> None:
        self.load_state_dict(json.loads((Path(path) / "writer.json").read_text()))

    def __repr__(self) -> str:
        return (
            f"PartitionWriter(partitions={self.partitions}, capacity={self.capacity}, value_range={self.value_range})"
        )
