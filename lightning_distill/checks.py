"""Checks of user input that every component shares: numeric ranges of hyperparameters, and
output paths, each refused with one line that names the key, the value and what is valid.

Every module, data module and callback of this project declares the range of each numeric
constructor argument in a class table ``RANGES`` and calls ``check_ranges`` first thing in its
constructor; ``tests/test_ranges.py`` walks every constructor argument, so an argument added
without a range fails a test.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning_distill.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """An interval of valid numbers (``None``: unbounded on that side); values are finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self, name: str) -> str:
        """``0 < clip``, ``0 <= gamma <= 1``, ``lr > 0 and finite``..."""
        low = "" if self.low is None else f"{self.low:g} {'<' if self.low_open else '<='} "
        high = "" if self.high is None else f" {'<' if self.high_open else '<='} {self.high:g}"
        return f"{low}{name}{high}" if low or high else f"{name} finite"

    def outside(self) -> float:
        """A value just outside the range (what the range test feeds each argument)."""
        if self.low is not None:
            return self.low if self.low_open else self.low - 1
        if self.high is not None:
            return self.high if self.high_open else self.high + 1
        return math.nan


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1)  # a probability, a discount, a smoothing constant
FRACTION = Range(0, 1, low_open=True)  # a share that must keep something
AT_LEAST_1 = Range(1)
FINITE = Range()


def check_ranges(owner: str, ranges: Mapping[str, Range], values: Mapping[str, Any]) -> None:
    """Every value named in ``ranges`` (a number, or a sequence of numbers such as layer widths)
    inside its range; ``None`` and strings (``auto``, choices checked elsewhere) pass.

    ``owner``: where the user sets them, e.g. ``model.init_args``."""
    for name, valid in ranges.items():
        value = values[name]
        if value is None or isinstance(value, str):
            continue
        items = value if isinstance(value, Sequence) else [value]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise ConfigError(f"{owner}.{name}={value!r} is not a number; valid: {valid.describe(name)}")
            if item not in valid:
                shown = name if items is not value else f"each of {name}"
                raise ConfigError(f"{owner}.{name}={value!r} is out of range; valid: {valid.describe(shown)}")


def check_output_folder(flag: str, value: str | Path) -> None:
    """Before any work: the folder an output file goes to exists and is writable."""
    folder = Path(value).parent
    if not folder.is_dir():
        raise ConfigError(
            f"{flag} {str(value)!r}: the folder {str(folder)!r} does not exist; create it or write elsewhere"
        )
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{flag} {str(value)!r}: the folder {str(folder)!r} is not writable")
