"""Teachers from the Hugging Face Hub: ``hf:<org>/<repo>`` or ``hf:<org>/<repo>/<file>``.

RL Zoo publishes ``sb3/<algo>-<env>`` repos holding ``<algo>-<env>.zip``; CleanRL publishes
``cleanrl/<env>-<exp_name>-seed<n>`` holding ``<exp_name>.cleanrl_model``. Without a file name
the repo must hold exactly one teacher file (``TEACHER_PATTERNS``); only those files and RL
Zoo's ``vec_normalize.pkl`` (its MuJoCo agents' observation statistics) are fetched, never the
repo's videos or replay buffers.

``huggingface_hub`` is imported on first use (``pip install "lightning_distill[hub]"``) and
behaves as everywhere else: its cache (``HF_HOME`` / ``HF_HUB_CACHE``), ``HF_HUB_OFFLINE=1``
and a token from ``hf auth login`` for private repos. What is fetched comes from strangers:
the importers read weights with ``weights_only=True``, metadata as JSON and ``vec_normalize.pkl``
with an unpickler that builds only arrays and numbers (``teachers.vec_normalize``): nothing in a
downloaded repo is executed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from lightning_distill.errors import CheckpointError

HUB_PREFIX = "hf:"
#: The files a teacher can be read from (see ``lightning_distill.teachers.load_teacher``).
TEACHER_PATTERNS = ("*.zip", "*.cleanrl_model", "*.ckpt")
#: fetched beside a teacher file when the repo has it (``teachers.vec_normalize``)
STATS_FILE = "vec_normalize.pkl"


def parse_hub_ref(ref: str) -> tuple[str, str | None]:
    """``hf:org/repo[/file]`` -> ``("org/repo", file or None)``."""
    parts = ref[len(HUB_PREFIX) :].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise CheckpointError(
            f"{ref!r} is not a Hub teacher reference; give hf:<org>/<repo> or hf:<org>/<repo>/<file>, "
            "e.g. hf:sb3/dqn-BreakoutNoFrameskip-v4"
        )
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:]) or None


def fetch_hub_teacher(ref: str) -> Path:
    """The local path of the teacher file ``ref`` names, downloaded into the Hub's cache if it is
    not there yet (or read from the cache alone with ``HF_HUB_OFFLINE=1``)."""
    repo_id, filename = parse_hub_ref(ref)
    hub = _import_hub()
    try:
        if filename is not None:
            path = Path(hub.hf_hub_download(repo_id, filename))
            _fetch_if_there(hub, repo_id, str(PurePosixPath(filename).with_name(STATS_FILE)))
            return path
        folder = Path(hub.snapshot_download(repo_id, allow_patterns=[*TEACHER_PATTERNS, f"*{STATS_FILE}"]))
    except Exception as exc:  # the hub's errors, as one line that says what to do
        raise _hub_error(ref, repo_id, filename, exc) from None
    return _the_teacher_file(ref, repo_id, folder)


def _fetch_if_there(hub: Any, repo_id: str, filename: str) -> None:
    """Download ``filename`` into the cache beside the teacher if the repo has it (most have not)."""
    try:
        hub.hf_hub_download(repo_id, filename)
    except Exception:  # absent, or offline and not cached: the teacher has no such file
        pass


def _the_teacher_file(ref: str, repo_id: str, folder: Path) -> Path:
    """The teacher file of a fetched snapshot: the only one, or the one named after the repo
    (RL Zoo's ``<algo>-<env>.zip`` beside its ``train_eval_metrics.zip``). An archive without
    ``policy.pth`` is not a model (its listing is read; nothing in it is)."""
    files = sorted(p for pattern in TEACHER_PATTERNS for p in folder.rglob(pattern) if p.is_file())
    files = [p for p in files if p.suffix != ".zip" or _holds_policy(p)]
    named = [p for p in files if p.stem == repo_id.split("/")[1]]
    if len(files) == 1 or len(named) == 1:
        return (named or files)[0]
    names = [p.relative_to(folder).as_posix() for p in files]
    if not files:
        raise CheckpointError(
            f"{ref!r}: the repo holds no teacher file ({', '.join(TEACHER_PATTERNS)}); name one as hf:{repo_id}/<file>"
        )
    raise CheckpointError(f"{ref!r}: the repo holds several teacher files {names}; name one as hf:{repo_id}/{names[0]}")


def _holds_policy(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "policy.pth" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _import_hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(
            "hf: teacher references need huggingface_hub: pip install 'lightning_distill[hub]'"
        ) from None
    return huggingface_hub


def _hub_error(ref: str, repo_id: str, filename: str | None, exc: Exception) -> CheckpointError:
    from huggingface_hub import errors

    patterns = " ".join(f'"{p}"' for p in (*TEACHER_PATTERNS, STATS_FILE))
    fetch = f"hf download {repo_id} " + (filename if filename else f"--include {patterns}")
    if isinstance(exc, errors.LocalEntryNotFoundError | errors.IncompleteSnapshotError):
        return CheckpointError(
            f"{ref!r} is not in the Hugging Face cache and the Hub cannot be reached (HF_HUB_OFFLINE, or no "
            f"network); fetch it once online with `{fetch}`"
        )
    if isinstance(exc, errors.RepositoryNotFoundError | errors.GatedRepoError):
        return CheckpointError(
            f"no Hugging Face repo {repo_id!r} that this machine may read ({ref!r}); check the name, or log in "
            "with `hf auth login` for a private or gated repo"
        )
    if isinstance(exc, errors.EntryNotFoundError | errors.RevisionNotFoundError):
        return CheckpointError(f"the Hugging Face repo {repo_id!r} has no file {filename!r} ({ref!r})")
    if isinstance(exc, errors.HFValidationError):
        return CheckpointError(f"{ref!r} does not name a Hugging Face repo: {str(exc).splitlines()[0]}")
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CheckpointError(f"cannot fetch {ref!r} from the Hugging Face Hub: {reason}")
