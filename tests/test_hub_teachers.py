"""``hf:<org>/<repo>[/<file>]`` teachers, read from a Hugging Face cache laid out here in the
hub's own format (``models--org--repo/{blobs,refs,snapshots}``), offline: no test touches the
network. What a repo holds comes from strangers: a pickle that would run code is refused."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch

from lightning_distill.errors import CheckpointError
from lightning_distill.teachers import PolicyTeacher, Teacher, load_teacher

from conftest import cleanrl_atari_network, save_cleanrl

hub_constants = pytest.importorskip("huggingface_hub.constants")
sb3 = pytest.importorskip("stable_baselines3")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache, with the hub offline (as ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=1`` set
    before the run would make it; the constants are patched too, as the hub may be imported)."""
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache


def lay_out_repo(cache: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """What ``hf download repo_id`` leaves in the cache: content-addressed blobs, the ``main``
    ref naming a commit, and the commit's snapshot of symlinks to the blobs."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    for name, content in files.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = repo / "snapshots" / COMMIT / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)


def sb3_cnn_ppo_zip(tmp_path: Path):
    from test_teacher_import import AtariShapedEnv, perturbed

    model = sb3.PPO("CnnPolicy", AtariShapedEnv(4), seed=0, device="cpu", n_steps=8, batch_size=8)
    perturbed(model.policy)
    model.save(tmp_path / "model.zip")
    return model, (tmp_path / "model.zip").read_bytes()


def metrics_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("evaluations.npz", b"\x00" * 16)
    return buffer.getvalue()


def test_an_rl_zoo_repo_loads_its_model_zip_and_ignores_the_rest(hub_cache, tmp_path):
    model, archive = sb3_cnn_ppo_zip(tmp_path)
    repo = "sb3/ppo-BreakoutNoFrameskip-v4"
    lay_out_repo(
        hub_cache,
        repo,
        {
            "ppo-BreakoutNoFrameskip-v4.zip": archive,
            "train_eval_metrics.zip": metrics_zip(),  # RL Zoo's evaluations, beside the model
            "config.yml": b"n_envs: 8\n",
            "replay.mp4": b"\x00" * 64,
        },
    )
    teacher = load_teacher(f"hf:{repo}", "ALE/Breakout")
    assert isinstance(teacher, PolicyTeacher)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        expected = model.policy.get_distribution(model.policy.obs_to_tensor(obs.numpy())[0]).distribution.logits
    assert torch.allclose(torch.log_softmax(teacher.targets_and_value(obs)[0], -1), expected, atol=1e-5)


@pytest.mark.parametrize("ref_suffix", ["", "/dqn_atari.cleanrl_model"], ids=["repo", "repo_and_file"])
def test_a_cleanrl_repo_loads_with_or_without_the_file_name(hub_cache, tmp_path, ref_suffix):
    network = cleanrl_atari_network(4)
    save_cleanrl(network, tmp_path / "dqn_atari.cleanrl_model")
    repo = "cleanrl/BreakoutNoFrameskip-v4-dqn_atari-seed1"
    files = {"dqn_atari.cleanrl_model": (tmp_path / "dqn_atari.cleanrl_model").read_bytes(), "README.md": b"# dqn"}
    lay_out_repo(hub_cache, repo, files)
    teacher = load_teacher(f"hf:{repo}{ref_suffix}", "ALE/Breakout")
    assert isinstance(teacher, Teacher)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(teacher.q_values(obs), network(obs.float() / 255.0), atol=1e-5)


def test_a_repo_missing_offline_is_one_line_naming_it_and_how_to_fetch_it(hub_cache):
    with pytest.raises(CheckpointError) as error:
        load_teacher("hf:sb3/dqn-PongNoFrameskip-v4", "ALE/Pong")
    message = str(error.value)
    assert "\n" not in message
    assert "'hf:sb3/dqn-PongNoFrameskip-v4' is not in the Hugging Face cache" in message
    fetch = 'hf download sb3/dqn-PongNoFrameskip-v4 --include "*.zip" "*.cleanrl_model" "*.ckpt" "vec_normalize.pkl"'
    assert f"`{fetch}`" in message


def test_a_repo_with_several_teacher_files_asks_for_one_by_name(hub_cache, tmp_path):
    save_cleanrl(cleanrl_atari_network(4), tmp_path / "a.cleanrl_model")
    content = (tmp_path / "a.cleanrl_model").read_bytes()
    lay_out_repo(hub_cache, "me/two", {"seed1.cleanrl_model": content, "seed2.cleanrl_model": content})
    with pytest.raises(CheckpointError, match=r"several teacher files .*; name one as hf:me/two/seed1.cleanrl_model"):
        load_teacher("hf:me/two", "ALE/Breakout")


def test_a_reference_without_org_and_repo_is_one_line():
    with pytest.raises(CheckpointError, match=r"'hf:breakout' is not a Hub teacher reference; give hf:<org>/<repo>"):
        load_teacher("hf:breakout", "ALE/Breakout")


class RunsCode:
    """A pickle payload that, if unpickled, would create ``path`` (standing in for any code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def malicious_pickle(sentinel: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"q_net.q_net.0.weight": RunsCode(sentinel)}, buffer)  # torch.save pickles the payload
    return buffer.getvalue()


def test_a_zip_carrying_a_malicious_pickle_is_refused_not_run(hub_cache, tmp_path):
    sentinel = tmp_path / "pwned"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data", "{}")
        zf.writestr("policy.pth", malicious_pickle(sentinel))
    lay_out_repo(
        hub_cache, "stranger/dqn-BreakoutNoFrameskip-v4", {"dqn-BreakoutNoFrameskip-v4.zip": archive.getvalue()}
    )
    with pytest.raises(CheckpointError) as error:
        load_teacher("hf:stranger/dqn-BreakoutNoFrameskip-v4", "ALE/Breakout")
    message = str(error.value)
    assert "(its policy.pth) holds objects that are not plain weights; refused unread" in message
    assert "(Unsupported global: GLOBAL getattr)" in message and "weights_only` set to `False" not in message
    assert not sentinel.exists()


def test_a_cleanrl_file_carrying_a_malicious_pickle_is_refused_not_run(hub_cache, tmp_path):
    sentinel = tmp_path / "pwned"
    lay_out_repo(hub_cache, "stranger/dqn", {"dqn_atari.cleanrl_model": malicious_pickle(sentinel)})
    with pytest.raises(CheckpointError, match="holds objects that are not plain weights; refused unread"):
        load_teacher("hf:stranger/dqn", "ALE/Breakout")
    assert not sentinel.exists()
    ran = tmp_path / "ran"  # the payload is real: a plain torch.load would have run it
    torch.load(io.BytesIO(malicious_pickle(ran)), weights_only=False)
    assert ran.exists()


def test_an_rl_zoo_mujoco_repo_brings_its_vec_normalize_statistics(hub_cache, tmp_path):
    from test_normalization import sb3_teacher_with_vec_normalize

    sb3_teacher_with_vec_normalize(tmp_path)
    repo = "sb3/ppo-Pendulum-v1"
    files = {"ppo-Pendulum-v1.zip": (tmp_path / "ppo-Pendulum-v1.zip").read_bytes()}
    lay_out_repo(hub_cache, repo, files | {"vec_normalize.pkl": (tmp_path / "vec_normalize.pkl").read_bytes()})
    for ref in (f"hf:{repo}", f"hf:{repo}/ppo-Pendulum-v1.zip"):
        normalizer = load_teacher(ref, "Pendulum-v1").network.obs_normalizer
        assert normalizer is not None and normalizer.stats.count.item() > 100
