"""User-facing errors: one line that names the bad value and what would be valid."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator


class ConfigError(ValueError):
    """Bad input from a config, the command line or a file path; printed as one line."""


class CheckpointError(ConfigError):
    """A checkpoint that is missing, unreadable, or does not fit the task it is used for."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite: the run stops before the update that would spread it
    into the weights, so every checkpoint written so far holds finite weights."""


def refused_pickle_reason(exc: BaseException) -> str:
    """What ``torch.load(weights_only=True)`` refused, e.g. ``Unsupported global: GLOBAL
    posix.system``, without torch's advice to retry with ``weights_only=False`` (which would run
    the file's code)."""
    found = re.search(r"Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+", str(exc))
    return found.group(0) if found else "it would build objects that are not tensors"


def _cause_in(exc: BaseException | None, matches: Callable[[BaseException], bool]) -> BaseException | None:
    """The first exception in ``exc``'s chain of causes that ``matches`` (jsonargparse and
    Lightning wrap errors raised while parsing or fitting)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if matches(exc):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _is_interpolation_error(exc: BaseException) -> bool:
    """omegaconf's errors: a ``${...}`` in a config that names no key."""
    return type(exc).__module__.startswith("omegaconf")


_NOISE = (
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Expected a <class 'NoneType'>",
    "Given value",
    "Not a valid subclass of",
    "Subclass types expect one of",
)


def summarize_parser_error(message: str) -> str:
    """jsonargparse's multi-line report of a bad config as one line: where, and what is wrong.

    A value outside a fixed set of choices (``--trainer.precision=bf17``) is named with every
    valid choice: ``trainer.precision='bf17' is not valid; valid: 64, 32, ..., 'bf16-mixed', ...``."""
    choices = _literal_choices(message)
    key = re.search(r'^Parser key "([^"]+)":', message.strip())
    given = re.search(r"^\s*Given value: (.*)$", message, flags=re.MULTILINE)
    if choices and key and given:
        return f"{key.group(1)}={given.group(1)!r} is not valid; valid: {', '.join(choices)}"
    parts = []
    for line in message.splitlines():
        line = line.strip().lstrip("- ").strip()
        if not line or line.startswith(_NOISE):
            continue
        line = re.sub(r'^Parser key "([^"]+)":', r"\1:", line)
        parts.append(line)
    return " ".join(parts)


def _literal_choices(message: str) -> list[str]:
    """The values of every ``typing.Literal[...]`` in a jsonargparse message, in order, once each;
    a number that is also accepted as a string (Lightning's ``64`` and ``'64'``) is named once,
    as the string."""
    import ast

    values: list[object] = []
    for group in re.findall(r"typing\.Literal\[([^\]]*)\]", message):
        try:
            values += [v for v in ast.literal_eval(f"[{group}]") if v not in values]
        except (ValueError, SyntaxError):
            continue
    strings = {v for v in values if isinstance(v, str)}
    return [repr(v) for v in values if isinstance(v, str) or str(v) not in strings]


def suggest_trainer_keys(message: str) -> str:
    """`` (did you mean --trainer.max_steps?)`` for an unknown ``--trainer.<key>`` close to a real one."""
    import difflib
    import inspect

    if "unrecognized arguments" not in message:
        return ""
    from lightning.pytorch import Trainer

    known = list(inspect.signature(Trainer.__init__).parameters)
    guesses = []
    for key in re.findall(r"--trainer\.(\w+)", message):
        guesses += [f"--trainer.{m}" for m in difflib.get_close_matches(key, known, n=1)]
    return f" (did you mean {', '.join(guesses)}?)" if guesses else ""


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Print bad-input errors as ``error: <one line>`` on stderr and exit with status 2."""
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except TrainingDiverged as exc:  # not bad input: exit status 1
        _finish_wandb_run()
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:
        _finish_wandb_run()
        cause = _cause_in(exc, lambda e: isinstance(e, ConfigError))
        interpolation = _cause_in(exc, _is_interpolation_error)
        if cause is not None:
            text = str(cause)
        elif isinstance(exc, ArgumentError):
            text = summarize_parser_error(str(exc)) + suggest_trainer_keys(str(exc))
        elif isinstance(exc, MisconfigurationException):  # Lightning's word for a bad Trainer setting
            text = " ".join(str(exc).split())
        elif interpolation is not None:
            text = "config interpolation: " + " ".join(str(interpolation).split())
        else:
            raise
        print(f"error: {text}", file=sys.stderr)
        raise SystemExit(2) from None


def _finish_wandb_run() -> None:
    """End an active W&B run now, marked failed, so that its closing lines (if any) come before
    the error, not after it at exit."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        try:
            wandb.run.finish(exit_code=1)
        except Exception:
            pass
