"""Sample + gather + priority-update cost of H-PR and PR against TorchRL's uniform buffer and
cpprb's prioritized buffer, in the same run.

Each memory holds 1M experiences (H-PR: ``partitions x capacity``, default 5 x 200k) of a
distillation entry: a MinAtar observation (4x10x10 uint8), the teacher's 6 Q-values and V.
Measured per minibatch:

- ``torchrl uniform`` (the reference): ``ReplayBuffer(LazyTensorStorage, RandomSampler).sample``;
- ``our uniform``, ``PR`` (one partition of 1M) and ``H-PR``: what ``TaskMemory`` does per task
  and update, through TorchRL's public ``ReplayBuffer.sample`` and the sampler's
  ``update_priority``: draw (uniform, or partition share x exact rank), importance weights,
  gather the rows, then (PR, H-PR) write the new priorities, stale-guarded, each moved to its
  exact rank;
  from a state where every experience has had its own random priority;
- ``cpprb prioritized``: cpprb's ``PrioritizedReplayBuffer`` (C++ sum tree, proportional PER)
  ``sample`` (which gathers) + ``update_priorities``, where cpprb is installed
  (``pip install -e ".[bench]"``);
- one distillation update of the quick start's student (4 MinAtar tasks, 256 -> 128 shared
  layers, KL, RMSProp), to put the replay's share of an update in proportion.

It also reports the sampler's own memory per slot, and the numba kernels' compile time in a
fresh process with an empty cache (paid once per machine: the kernels are cached on disk).
Rounds alternate so machine noise hits all alike; medians are printed with the ratios.
Targets: H-PR <= 1.0x TorchRL uniform at batches 32 and 256, and ahead of cpprb.

    python benchmarks/replay_throughput.py                 # 1M, batches 32 and 256
    python benchmarks/replay_throughput.py --capacity 20000 --rounds 2   # quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from tensordict import TensorDict

GAMES = ["Breakout", "Freeway", "SpaceInvaders", "Seaquest"]


def entries(n: int, rng: np.random.Generator) -> TensorDict:
    return TensorDict(
        {
            "obs": torch.from_numpy(rng.integers(0, 2, (n, 4, 10, 10), dtype=np.uint8)),
            "teacher_logits": torch.from_numpy(rng.normal(size=(n, 6)).astype(np.float32)),
            "value": torch.from_numpy(rng.uniform(0, 1, n).astype(np.float32)),
        },
        batch_size=[n],
    )


def fill(add, total: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for start in range(0, total, 50_000):
        add(entries(min(50_000, total - start), rng))


def time_per_call(fn, calls: int) -> float:
    fn()  # warm
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


COMPILE = """
import time
t0 = time.perf_counter()
import numpy as np
from lightning_distill.replay.hierarchical import HierarchicalMemory
m = HierarchicalMemory(2, 1000, (0.0, 1.0), window=10)
m.insert(np.linspace(0, 1, 2000))
slots, weight, generation = m.draw(8)
m.update_priority(slots, np.ones(8), generation)
m.load_state_dict(m.state_dict())
HierarchicalMemory(1, 10, uniform=True).insert(np.zeros(3))
print(time.perf_counter() - t0)
"""


def first_call_seconds(cache_dir: str | None) -> float:
    """Seconds from import to the first sample, update and load in a fresh process."""
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": cache_dir} if cache_dir else {}))
    out = subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=5)
    parser.add_argument("--capacity", type=int, default=200_000, help="experiences per partition")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--calls", type=int, default=2000, help="minibatches per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchrl.data import LazyTensorStorage, RandomSampler, ReplayBuffer

    from lightning_distill.replay import PrioritizedReplay, UniformReplay
    from lightning_distill.replay.hierarchical import HierarchicalMemory, HierarchicalReplayBuffer
    from lightning_distill.replay.memory import TaskMemory
    from lightning_distill.tasks import Task

    total = args.partitions * args.capacity
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; memories of {total:,} experiences (H-PR: {args.partitions} x {args.capacity:,})"
    )
    with tempfile.TemporaryDirectory() as cache:
        cold = first_call_seconds(cache)  # an empty cache: compiles, and fills it
        warm = first_call_seconds(cache)
    print(f"numba kernels, first call in a fresh process: {cold:.1f} s compiling (once), {warm:.2f} s from cache")

    task, batch = Task("MinAtar/Breakout"), max(args.batch_sizes)
    torchrl_uniform = ReplayBuffer(storage=LazyTensorStorage(total, device="cpu"), sampler=RandomSampler())
    uniform = TaskMemory(UniformReplay(total).make_buffer(task, None, batch), task, batch, 1)
    pr = TaskMemory(PrioritizedReplay(total).make_buffer(task, None, batch), task, batch, 1)
    hpr_memory = HierarchicalMemory(args.partitions, args.capacity, (0.0, 1.0), seed=0)
    hpr = TaskMemory(HierarchicalReplayBuffer(hpr_memory, batch), task, batch, 1)
    memories = {"our uniform": uniform, "PR": pr, "H-PR": hpr}
    t0 = time.perf_counter()
    fill(torchrl_uniform.extend, total, 0)
    for memory in memories.values():
        fill(memory.buffer.extend, total, 0)
    rng = np.random.default_rng(1)
    for memory in memories.values():  # as in training: every experience has had its own |delta|
        if memory.prioritized:
            stored = memory.hpr.stored_slots()
            for start in range(0, len(stored), 100_000):
                chunk = stored[start : start + 100_000]
                memory.hpr.update_priority(chunk, rng.random(len(chunk)))
    print(f"filled in {time.perf_counter() - t0:.0f} s; H-PR partition sizes {hpr_memory.sizes.tolist()}")
    bytes_per_slot = hpr_memory.nbytes / total
    print(f"H-PR memory state: {hpr_memory.nbytes / 2**20:.1f} MiB, {bytes_per_slot:.1f} bytes per slot")
    cpprb = cpprb_buffer(total)
    if cpprb is not None:
        fill(lambda data: cpprb.add(**{key: value.numpy() for key, value in data.items()}), total, 0)
        cpprb.update_priorities(np.arange(total), rng.random(total))
    else:
        print("cpprb prioritized: not installed (pip install -e '.[bench]')")

    def memory_step(memory: TaskMemory, batch_size: int):
        memory.batch_size = batch_size
        minibatch = memory.sample()
        memory.update_priority(minibatch["index"], minibatch["index_generation"], torch.rand(batch_size))

    def cpprb_step(batch_size: int):
        minibatch = cpprb.sample(batch_size, beta=0.5)
        cpprb.update_priorities(minibatch["indexes"], rng.random(batch_size))

    update_time = distillation_update_time(args.calls // 4)
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for batch_size in args.batch_sizes:
            # each callable binds this round's batch size (b=batch_size): it runs inside this iteration
            kinds = {"torchrl uniform": lambda b=batch_size: torchrl_uniform.sample(b)}
            for name, memory in memories.items():
                kinds[name] = lambda b=batch_size, m=memory: memory_step(m, b)
            if cpprb is not None:
                kinds["cpprb prioritized"] = lambda b=batch_size: cpprb_step(b)
            for name, fn in kinds.items():
                results.setdefault((name, batch_size), []).append(time_per_call(fn, args.calls))
    print(f"\none distillation update (4 MinAtar tasks x 32, 256/128 student): {update_time * 1e3:.2f} ms")
    print(
        f"{'batch':>5} {'kind':<20} {'us/minibatch':>13} {'minibatches/s':>14} {'x torchrl uniform':>18} "
        f"{'4 tasks / update':>17}"
    )
    summary = []
    for batch_size in args.batch_sizes:
        median = {name: statistics.median(times) for (name, size), times in results.items() if size == batch_size}
        base = median["torchrl uniform"]
        for name, t in median.items():
            share = f"{4 * t / update_time:.1%}" if batch_size == 32 else ""
            print(f"{batch_size:>5} {name:<20} {t * 1e6:>13.1f} {1 / t:>14,.0f} {t / base:>18.2f} {share:>17}")
        b = f"b{batch_size}"
        summary += [f"hpr_{b}_vs_uniform={median['H-PR'] / base:.2f}", f"pr_{b}_vs_uniform={median['PR'] / base:.2f}"]
        if cpprb is not None:
            summary.append(f"hpr_{b}_vs_cpprb={median['H-PR'] / median['cpprb prioritized']:.2f}")
        summary.append(f"hpr_{b}_us={median['H-PR'] * 1e6:.1f}")
    summary += [f"bytes_per_slot={bytes_per_slot:.1f}", f"compile_s={cold:.1f}"]
    print("result: " + " ".join(summary))


def cpprb_buffer(total: int):
    """cpprb's PrioritizedReplayBuffer over the same entries, or None where cpprb is missing."""
    try:
        from cpprb import PrioritizedReplayBuffer
    except ImportError:
        return None
    fields = {"obs": {"shape": (4, 10, 10), "dtype": np.uint8}, "teacher_logits": {"shape": 6}, "value": {}}
    return PrioritizedReplayBuffer(total, fields, alpha=0.7)


def distillation_update_time(calls: int) -> float:
    """Seconds per update of the quick start's student: 4 tasks' minibatches, KL, RMSProp."""
    from lightning_distill.losses import distillation_loss
    from lightning_distill.students import make_student
    from lightning_distill.tasks import Task

    tasks = [Task(f"MinAtar/{game}") for game in GAMES]
    student = make_student("proposed", tasks, [256, 128])
    optimizer = torch.optim.RMSprop(student.parameters(), lr=5e-4, alpha=0.99, eps=1e-6)
    batches = [(torch.rand(32, *t.obs_shape).round(), torch.randn(32, t.num_actions)) for t in tasks]

    def update():
        loss = sum(
            distillation_loss(student(obs, i), q, "kl", 0.01, torch.ones(32)).loss for i, (obs, q) in enumerate(batches)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return statistics.median(time_per_call(update, calls) for _ in range(3))


if __name__ == "__main__":
    main()
