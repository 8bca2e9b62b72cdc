"""H-PR, PR and uniform replay (spec section 6): the sampling distribution, the importance
weights, per-partition FIFO eviction, stale priority updates, and saving / loading."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from tensordict import TensorDict

from lightning_distill.errors import ConfigError
from lightning_distill.replay import (
    HierarchicalReplay,
    PrioritizedReplay,
    UniformReplay,
    estimate_value_range,
)
from lightning_distill.replay.hierarchical import HierarchicalMemory, HierarchicalReplayBuffer
from lightning_distill.replay.memory import TaskMemory
from lightning_distill.tasks import Task
from lightning_distill.teachers import load_teacher

from conftest import fit_and_record_batches

DRAWS = 200_000


def make_buffer(partitions=3, capacity=40, value_range=(0.0, 3.0), **sampler_kwargs):
    """A TorchRL ``ReplayBuffer`` over an H-PR memory."""
    memory = HierarchicalMemory(partitions, capacity, value_range if partitions > 1 else None, seed=0, **sampler_kwargs)
    return HierarchicalReplayBuffer(memory)  # each draw names its batch size


def draw(buffer, batch_size):
    """The slots of a minibatch and its info (``_weight``, ``index_generation``), sampled the
    public way."""
    _, info = buffer.sample(batch_size, return_info=True)
    return info["index"], info


def insert(buffer, values, first_id=0):
    """Experiences with state values ``values``; their ``id`` is their insertion number."""
    values = torch.as_tensor(values, dtype=torch.float32)
    ids = torch.arange(first_id, first_id + len(values))
    return buffer.extend(TensorDict({"value": values, "id": ids}, batch_size=[len(values)])).numpy()


def draw_counts(buffer, draws=DRAWS):
    counts = np.zeros(buffer.sampler.memory.slots)
    for _ in range(draws // 1000):
        slots, _ = draw(buffer, 1000)
        counts += np.bincount(slots.numpy(), minlength=len(counts))
    return counts


def rank_probabilities(priorities, alpha):
    """Rank-based PR (Schaul et al. 2016) over one memory: rank 1 = largest |delta|."""
    ranks = np.empty(len(priorities))
    ranks[np.argsort(-np.asarray(priorities), kind="stable")] = np.arange(1, len(priorities) + 1)
    mass = ranks**-alpha
    return mass / mass.sum()


def assert_fits(counts, expected, draws=DRAWS):
    """Chi-square goodness of fit over the slots that may be drawn; nothing drawn elsewhere."""
    support = expected > 0
    assert counts[~support].sum() == 0
    _, p_value = chisquare(counts[support], expected[support] * draws)
    assert p_value > 1e-3, p_value


def test_values_go_to_evenly_split_partitions_with_out_of_range_values_clamped():
    memory = HierarchicalMemory(4, 10, value_range=(0.0, 4.0))
    values = [-5.0, 0.0, 0.5, 1.0, 1.0001, 2.0, 3.5, 4.0, 9.0, float("nan")]
    # [V1, V2], (V2, V3], ...: a boundary value belongs to the lower partition
    assert memory.partition_of(values).tolist() == [0, 0, 0, 0, 1, 1, 3, 3, 3, 0]


def test_draws_follow_partition_share_times_rank_probability_and_skip_empty_partitions():
    alpha, rng = 0.7, np.random.default_rng(1)
    buffer = make_buffer(alpha=alpha)
    values = np.array([0.5] * 20 + [1.5] * 10)  # partitions 0 and 1; partition 2 stays empty
    slots = insert(buffer, rng.permutation(values))
    priorities = rng.random(len(slots)) + 0.01
    buffer.sampler.update_priority(torch.as_tensor(slots), torch.as_tensor(priorities))
    expected = np.zeros(120)
    for part, share in ((0, 20 / 30), (1, 10 / 30)):
        mine = slots[slots // 40 == part]
        expected[mine] = share * rank_probabilities(buffer.sampler.memory.priority[mine], alpha)
    counts = draw_counts(buffer)
    assert_fits(counts, expected)
    assert counts[80:].sum() == 0


def test_random_partitions_spread_one_value_over_every_partition_and_sample_by_their_share():
    buffer = make_buffer(partitions=3, capacity=400, window=900, partition_by="random")
    slots = insert(buffer, [0.5] * 900)  # one value: by value, all would go to partition 0
    memory = buffer.sampler.memory
    counts = np.bincount(slots // 400, minlength=3)
    assert counts.sum() == 900 and counts.min() > 240  # binomial(900, 1/3): 300 +- 14
    shares = counts / 900
    sampled = draw_counts(buffer, 30_000).reshape(3, 400).sum(axis=1) / 30_000
    assert np.abs(sampled - shares).max() < 0.02  # P_j follows the window's insertions, as by value
    assert memory.statistics()["window_0"] == pytest.approx(shares[0])


def test_partitioning_at_random_is_saved_and_checked_on_load():
    rng = np.random.default_rng(3)
    original = make_buffer(partitions=3, capacity=30, partition_by="random")
    insert(original, rng.uniform(0, 3, size=20))
    restored = make_buffer(partitions=3, capacity=30, partition_by="random")
    restored.load_state_dict(original.state_dict())
    values = rng.uniform(0, 3, size=5)
    assert np.array_equal(insert(original, values), insert(restored, values))  # the same random partitions
    by_value = make_buffer(partitions=3, capacity=30)
    with pytest.raises(ConfigError, match="partitions by 'random', this one by 'value'"):
        by_value.load_state_dict(original.state_dict())
    with pytest.raises(ConfigError, match="partition_by='values' is not valid; valid: value, random"):
        HierarchicalMemory(3, 30, (0.0, 3.0), partition_by="values")


def test_partition_share_counts_only_the_recent_window_of_insertions():
    buffer = make_buffer(alpha=0.0, window=10)
    insert(buffer, [0.5] * 30)  # partition 0: old insertions, out of the window
    slots = insert(buffer, [1.5] * 3 + [0.5] * 7)
    counts = draw_counts(buffer)
    part = np.arange(120) // 40
    assert abs(counts[part == 0].sum() / DRAWS - 0.7) < 0.01
    assert abs(counts[part == 1].sum() / DRAWS - 0.3) < 0.01
    assert len(slots) == 10


def test_importance_weights_match_the_formula_normalised_by_the_batch_maximum():
    alpha, beta = 0.7, 0.4
    buffer = make_buffer(alpha=alpha, beta=beta, beta_final=beta)
    slots = insert(buffer, [0.5] * 6 + [2.5] * 2)
    buffer.sampler.update_priority(torch.as_tensor(slots), torch.arange(1.0, 9.0))
    sampled, info = draw(buffer, 64)
    probs = {}
    for part, share in ((0, 6 / 8), (2, 2 / 8)):
        mine = slots[slots // 40 == part]
        probs.update(
            zip(mine.tolist(), share * rank_probabilities(buffer.sampler.memory.priority[mine], alpha), strict=True)
        )
    w = (8 * np.array([probs[s] for s in sampled.tolist()])) ** -beta
    np.testing.assert_allclose(info["_weight"], w / w.max(), rtol=1e-5)


def test_beta_is_annealed_linearly_over_the_given_number_of_updates():
    buffer = make_buffer(beta=0.5, beta_final=1.0, beta_updates=10)
    insert(buffer, [0.5])
    betas = []
    for _ in range(12):
        betas.append(buffer.sampler.memory.current_beta)
        draw(buffer, 4)
    assert betas[0] == 0.5 and betas[5] == pytest.approx(0.75) and betas[10:] == [1.0, 1.0]


def test_one_partition_is_rank_based_prioritized_replay():
    alpha, rng = 0.6, np.random.default_rng(2)
    pr = HierarchicalReplayBuffer(HierarchicalMemory(1, 50, alpha=alpha, seed=0), 1000)
    slots = insert(pr, rng.normal(size=50))
    priorities = rng.random(50)
    pr.sampler.update_priority(torch.as_tensor(slots), torch.as_tensor(priorities))
    expected = np.zeros(50)
    expected[slots] = rank_probabilities(priorities.astype(np.float32), alpha)
    assert_fits(draw_counts(pr), expected)
    # and the config kinds agree: HierarchicalReplay(partitions=1) builds PrioritizedReplay's buffer
    task = Task("CartPole-v1")
    a = HierarchicalReplay(partitions=1, partition_capacity=50, alpha=alpha).make_buffer(task, None, 32, seed=3)
    b = PrioritizedReplay(capacity=50, alpha=alpha).make_buffer(task, None, 32, seed=3)
    for buffer in (a, b):
        insert(buffer, rng.normal(size=50))
        buffer.sampler.update_priority(torch.arange(50), torch.as_tensor(priorities))
    for _ in range(3):
        assert torch.equal(draw(a, 32)[0], draw(b, 32)[0])


def test_uniform_mode_is_uniform_over_what_is_stored_with_unit_weights():
    buffer = make_buffer(uniform=True)
    slots = insert(buffer, [0.5] * 25 + [2.9] * 5)  # uneven partitions
    buffer.sampler.update_priority(torch.as_tensor(slots), torch.rand(30))  # ignored
    expected = np.zeros(120)
    expected[slots] = 1 / 30
    assert_fits(draw_counts(buffer), expected)
    assert draw(buffer, 16)[1]["_weight"].eq(1).all()


def true_ranked(sampler, partition):
    """A partition's stored slots by current priority, descending, ties by slot: the order the
    sampler must hold, computed from scratch."""
    C = sampler.memory.capacity
    stored = partition * C + np.arange(sampler.memory.sizes[partition])
    return stored[np.lexsort((stored, -sampler.memory.priority[stored].astype(np.float64)))]


def test_new_experiences_enter_with_the_largest_priority_seen():
    buffer = make_buffer(partitions=1, capacity=100)
    sampler = buffer.sampler
    old = insert(buffer, [0.0] * 50)
    sampler.update_priority(torch.as_tensor(old), torch.linspace(1, 5, 50))
    sampler.update_priority(torch.as_tensor(old), torch.linspace(0.1, 1, 50))  # the loss shrank
    new = insert(buffer, [0.0])
    assert sampler.memory.priority[new[0]] == pytest.approx(5.0)
    assert sampler.memory.ranked_slots(0)[0] == new[0]  # rank 1: above every experience that was drawn
    newer = insert(buffer, [0.0])
    assert sampler.memory.ranked_slots(0)[:2].tolist() == [new[0], newer[0]]  # a tie: the lower slot first


def test_an_updated_priority_moves_its_experience_to_its_exact_rank_at_once():
    buffer = make_buffer(partitions=1, capacity=100)
    sampler = buffer.sampler
    slots = insert(buffer, [0.0] * 100)
    sampler.update_priority(torch.as_tensor(slots), torch.linspace(2, 1, 100))  # slot k: rank k
    sampler.update_priority(torch.as_tensor([slots[0]]), torch.tensor([1.5]))
    ranked = sampler.memory.ranked_slots(0)
    assert ranked[0] == slots[1] and ranked.tolist().index(slots[0]) == 49  # 49 priorities above 1.5
    assert np.array_equal(ranked, true_ranked(sampler, 0))


def interleave(buffer, rng, steps, batch=32, inserts=4, on_draw=None):
    """What training does to a memory: each step, new experiences (evicting the oldest of a full
    partition), a minibatch drawn, then its priorities replaced by values unrelated to the old
    ones (the hardest case for a rank order kept between sorts), every other update stale."""
    sampler = buffer.sampler
    for step in range(steps):
        insert(buffer, rng.uniform(0, 3, size=inserts))
        if on_draw is not None:
            truth = [true_ranked(sampler, part) for part in range(sampler.memory.partitions)]
        slots, info = draw(buffer, batch)
        if on_draw is not None:
            on_draw(slots.numpy(), info, truth)
        if step % 2:
            insert(buffer, rng.uniform(0, 3, size=inserts))  # some drawn slots are rewritten first
        sampler.update_priority(
            slots, torch.as_tensor(rng.exponential(size=batch)), generation=info["index_generation"]
        )


def test_each_partition_holds_exactly_its_stored_experiences_in_rank_order_under_any_interleaving():
    # capacities past one block (256 keys): blocks split, empty out and are repacked
    buffer = make_buffer(partitions=3, capacity=700, value_range=(0.0, 3.0))
    interleave(buffer, np.random.default_rng(3), steps=1500, batch=64, inserts=8)
    sampler = buffer.sampler
    assert sampler.memory.sizes.tolist() == [700, 700, 700]  # every partition turned over
    for part in range(3):
        assert np.array_equal(sampler.memory.ranked_slots(part), true_ranked(sampler, part))


@pytest.mark.parametrize("partitions", [3, 1], ids=["hpr", "pr"])
def test_drawn_true_ranks_and_partitions_fit_the_formula_at_every_draw(partitions):
    """Goodness of fit over (partition, rank bucket): at each draw, the expected share of each
    cell is computed from the true ranks at that moment, then summed over all draws."""
    alpha, rng = 0.7, np.random.default_rng(7)
    buffer = make_buffer(partitions=partitions, capacity=300, alpha=alpha, window=200)
    sampler = buffer.sampler
    interleave(buffer, rng, steps=200, batch=64)  # warm up: memories full, ranks shuffled
    edges = np.unique(np.round(np.geomspace(1, 300, 12)).astype(int))[:-1] - 1  # rank buckets' first (0-based) ranks
    counts, expected = np.zeros((partitions, len(edges))), np.zeros((partitions, len(edges)))

    def on_draw(slots, info, truth):
        share = sampler.memory.visits / sampler.memory.visits.sum()
        for part in range(partitions):
            ranked = truth[part]
            mass = np.arange(1, len(ranked) + 1) ** -alpha
            bucket = np.searchsorted(edges, np.arange(len(ranked)), side="right") - 1
            expected[part] += len(slots) * share[part] * np.bincount(bucket, mass, len(edges)) / mass.sum()
            rank_of = np.full(300 * partitions, -1)
            rank_of[ranked] = np.arange(len(ranked))
            drawn = rank_of[slots[slots // 300 == part]]  # the true rank of each draw
            assert np.all(drawn >= 0)  # only stored experiences are drawn
            counts[part] += np.bincount(bucket[drawn], minlength=len(edges))

    interleave(buffer, rng, steps=1500, batch=64, on_draw=on_draw)
    assert counts.sum() == 1500 * 64
    _, p_value = chisquare(counts.ravel(), expected.ravel() * counts.sum() / expected.sum())
    assert p_value > 1e-3, (p_value, counts, expected)
    assert counts[:, 0].sum() / counts.sum() > 15 / 300  # rank 1 draws 19x a uniform share: a real test


def test_importance_weights_match_the_formula_after_interleaved_updates():
    alpha, beta, rng = 0.7, 0.4, np.random.default_rng(8)
    buffer = make_buffer(partitions=3, capacity=300, alpha=alpha, beta=beta, beta_final=beta, window=200)
    sampler = buffer.sampler
    interleave(buffer, rng, steps=300, batch=64)
    slots, info = draw(buffer, 64)
    share = sampler.memory.visits / sampler.memory.visits.sum()
    prob = []
    for slot in slots.tolist():
        part = slot // 300
        ranked = true_ranked(sampler, part)
        rank = ranked.tolist().index(slot) + 1
        prob.append(share[part] * rank**-alpha / (np.arange(1, len(ranked) + 1) ** -alpha).sum())
    w = (sampler.memory.sizes.sum() * np.array(prob)) ** -beta
    np.testing.assert_allclose(info["_weight"], w / w.max(), rtol=1e-5)


def test_each_partition_is_a_fifo_that_keeps_exactly_its_newest_experiences():
    rng = np.random.default_rng(4)
    buffer = make_buffer(partitions=3, capacity=5)
    values = rng.uniform(0, 3, size=100)
    for start in range(0, 100, 7):  # batches that straddle evictions
        insert(buffer, values[start : start + 7], first_id=start)
    parts = buffer.writer.memory.partition_of(values)
    stored_ids = buffer.storage.get(torch.arange(15))["id"].numpy()
    for part in range(3):
        newest = np.flatnonzero(parts == part)[-5:]
        assert sorted(stored_ids[part * 5 : (part + 1) * 5]) == sorted(newest.tolist())
    assert buffer.writer.memory.stored == 15


def test_a_priority_for_an_evicted_experience_does_not_reach_its_slots_new_occupant():
    buffer = make_buffer(partitions=1, capacity=4)
    slots = insert(buffer, [0.0] * 4)
    buffer.sampler.update_priority(torch.as_tensor(slots), torch.full((4,), 2.0))
    sampled, info = draw(buffer, 4)
    insert(buffer, [0.0] * 4)  # every slot rewritten, at the largest priority seen
    buffer.sampler.update_priority(sampled, torch.full((4,), 0.01), generation=info["index_generation"])
    assert np.all(buffer.sampler.memory.priority == pytest.approx(2.0))
    assert np.array_equal(buffer.sampler.memory.ranked_slots(0), np.arange(4))  # the index kept no stale key
    # the same through the data module's memory, whose batches carry index_generation
    task = Task("CartPole-v1")
    memory = TaskMemory(PrioritizedReplay(capacity=4).make_buffer(task, None, 4), task, batch_size=4, num_envs=4)

    def add() -> None:
        memory.add(np.zeros((4, 4), np.float32), torch.zeros(4, 2), torch.zeros(4), np.ones(4, bool))

    add()
    batch = memory.sample()
    add()
    memory.update_priority(batch["index"], batch["index_generation"], torch.full((4,), 0.01))
    assert np.all(memory.hpr.priority == pytest.approx(1.0))
    batch = memory.sample()
    memory.update_priority(batch["index"], batch["index_generation"], torch.full((4,), 0.01))
    assert memory.hpr.priority[batch["index"].numpy()] == pytest.approx([0.01] * 4)


@pytest.mark.parametrize("how", ["state_dict", "dumps"])
def test_a_saved_and_loaded_buffer_samples_as_the_original_would(tmp_path, how):
    rng = np.random.default_rng(5)
    original = make_buffer(partitions=3, capacity=30, window=25)
    for _ in range(20):
        insert(original, rng.uniform(0, 3, size=4))
        slots, info = draw(original, 8)
        original.sampler.update_priority(slots, torch.rand(8), generation=info["index_generation"])
    restored = make_buffer(partitions=3, capacity=30, window=25)
    if how == "state_dict":
        restored.load_state_dict(original.state_dict())
    else:
        original.dumps(tmp_path / "replay")
        restored.loads(tmp_path / "replay")
    for _ in range(10):  # with new insertions, evictions and priority updates between draws
        values = rng.uniform(0, 3, size=4)
        for buffer in (original, restored):
            insert(buffer, values)
        a, info_a = draw(original, 8)
        b, info_b = draw(restored, 8)
        assert torch.equal(a, b) and np.array_equal(info_a["_weight"], info_b["_weight"])
        assert torch.equal(original.storage.get(a)["id"], restored.storage.get(b)["id"])
        priority = torch.rand(8)
        for buffer, slots, info in ((original, a, info_a), (restored, b, info_b)):
            buffer.sampler.update_priority(slots, priority, generation=info["index_generation"])


def test_loading_a_state_saved_with_other_replay_settings_names_both():
    original = make_buffer(partitions=3, capacity=30)
    other = make_buffer(partitions=2, capacity=30)
    with pytest.raises(ConfigError, match="3 partitions x 30.*this one 2 partitions x 30"):
        other.load_state_dict(original.state_dict())


def test_replay_settings_are_checked_when_the_config_is_read():
    with pytest.raises(ConfigError, match="alpha=-1"):
        HierarchicalReplay(alpha=-1)
    with pytest.raises(ConfigError, match="partitions, partition_capacity and value_steps must be >= 1, got 0"):
        HierarchicalReplay(partitions=0)
    with pytest.raises(ConfigError, match="beta=2"):
        PrioritizedReplay(beta=2)
    with pytest.raises(ConfigError, match="capacity must be >= 1, got 0"):
        UniformReplay(0)


def test_the_value_range_is_measured_by_playing_the_teacher():
    task = Task("MinAtar/Breakout")
    teacher = load_teacher("bundled:minatar/breakout", task)
    low, high = estimate_value_range(task, teacher, steps=400, seed=0)
    assert 0 <= low < high < 20  # Breakout's returns are small positive numbers
    buffer = HierarchicalReplay(partitions=5, partition_capacity=10, value_steps=400).make_buffer(
        task, teacher, 4, seed=0
    )
    assert buffer.writer.memory.value_range == (low, high)


def test_distillation_with_hpr_writes_each_updates_priorities_and_weights_the_loss():
    from lightning_distill.data import DistillDataModule
    from lightning_distill.modules import Distillation

    tasks = [{"id": "MinAtar/Breakout"}, {"id": "MinAtar/Freeway"}]
    replay = HierarchicalReplay(partitions=3, partition_capacity=500, value_steps=200)
    data = DistillDataModule(
        tasks,
        ["bundled:minatar/breakout", "bundled:minatar/freeway"],
        replay=replay,
        num_envs=2,
        learning_starts=100,
        train_freq=1,
        seed=0,
    )
    model = Distillation(tasks=data.tasks, head_hidden=[32], lr=1e-3)
    batches = fit_and_record_batches(model, data, max_steps=40)
    for memory in data.memories:
        sampler = memory.buffer.sampler
        assert sampler.memory.samples >= 40 and memory.buffer.writer.memory.sizes.sum() == len(memory) >= 100
        stored = np.concatenate([np.arange(j * 500, j * 500 + n) for j, n in enumerate(sampler.memory.sizes)])
        assert len(np.unique(sampler.memory.priority[stored])) >= 20  # |delta|s written back (new ones share the max)
    weights = torch.stack([torch.cat([minibatch["weight"] for minibatch in batch]) for batch in batches])
    assert weights.max() == 1.0 and weights.min() < 1.0  # importance weights reach the loss


def test_the_torchrl_example_in_the_docs_runs_as_written(tmp_path):
    """docs/replay.md's example: H-PR in a user's own ``torchrl.data.ReplayBuffer``, filled with
    ``extend``, sampled, re-prioritised and saved and loaded through TorchRL's own methods."""
    from conftest import REPO

    text = (REPO / "docs/replay.md").read_text()
    code = text.split("<!-- example: torchrl -->\n```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("/tmp/hpr_buffer", str(tmp_path / "hpr_buffer"))
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(code, "docs/replay.md", "exec"), namespace)
    memory = namespace["memory"]
    assert memory.stored == 3_000 and memory.sizes.max() <= 1_000  # placed by value, each a FIFO
    assert memory.samples == namespace["restored"].samples == 2  # the saved draw, then one more on each side


def test_statistics_give_partition_shares_mean_weight_and_effective_batch_since_last_read():
    buffer = make_buffer(partitions=3, capacity=40, window=10, beta=1.0, beta_final=1.0)
    memory = buffer.sampler.memory
    insert(buffer, [0.5] * 30 + [1.5] * 6 + [2.5] * 4)  # the window holds the last 10: 0 x 0, 6 x 1, 4 x 2
    weights = [draw(buffer, 64)[1]["_weight"] for _ in range(3)]
    stats = memory.statistics()
    assert [stats[f"stored_{j}"] for j in range(3)] == [30 / 40, 6 / 40, 4 / 40]
    assert [stats[f"window_{j}"] for j in range(3)] == [0.0, 0.6, 0.4]
    assert stats["sampled_0"] == 0.0 and stats["sampled_1"] + stats["sampled_2"] == 1.0  # only windowed partitions
    assert stats["mean_weight"] == pytest.approx(np.mean([w.mean() for w in weights]))
    ess = [float(w.sum() ** 2 / (w * w).sum()) for w in weights]
    assert stats["effective_batch"] == pytest.approx(np.mean(ess)) and 1 <= stats["effective_batch"] <= 64
    assert "mean_weight" not in memory.statistics()  # the counts start again after each read
    assert make_buffer(uniform=True).sampler.memory.statistics().keys() <= {
        f"{name}_{j}" for name in ("stored", "window", "sampled") for j in range(3)
    }


def test_a_plain_torchrl_replay_buffer_of_the_same_parts_samples_the_same_minibatches():
    """``HierarchicalReplayBuffer.sample`` is TorchRL's generic ``ReplayBuffer.sample`` minus
    work it has no use for: the same parts in a plain ``ReplayBuffer`` give the same rows, slots,
    weights and generations, draw after draw."""
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from lightning_distill.replay.hierarchical import HierarchicalSampler, PartitionWriter

    fast = make_buffer(partitions=3, capacity=50, window=40)
    memory = HierarchicalMemory(3, 50, (0.0, 3.0), window=40, seed=0)
    plain = ReplayBuffer(
        storage=LazyTensorStorage(memory.slots), sampler=HierarchicalSampler(memory), writer=PartitionWriter(memory)
    )
    rng = np.random.default_rng(2)
    for step in range(30):
        values = rng.uniform(0, 3, size=6)
        for buffer in (fast, plain):
            insert(buffer, values, first_id=6 * step)
        (a, info_a), (b, info_b) = fast.sample(16, return_info=True), plain.sample(16, return_info=True)
        assert torch.equal(a["id"], b["id"]) and torch.equal(info_a["index"], info_b["index"])
        assert torch.equal(info_a["_weight"], info_b["_weight"])
        assert torch.equal(info_a["index_generation"].long(), info_b["index_generation"].long())
        priority = torch.as_tensor(rng.exponential(size=16))
        fast.update_priority(info_a["index"], priority, info_a["index_generation"])
        plain.sampler.update_priority(info_b["index"], priority, generation=info_b["index_generation"])
