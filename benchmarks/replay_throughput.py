"""Sample + priority-update rate of H-PR against TorchRL's uniform buffer, in the same run.

The memory holds ``partitions x capacity`` experiences (default 5 x 200k = 1M) of a
distillation entry: a MinAtar observation (4x10x10 uint8), the teacher's 6 Q-values and V.
Measured per minibatch:

- ``torchrl uniform``: ``ReplayBuffer(LazyTensorStorage, RandomSampler).sample(batch)``, the
  public path, on the same data;
- ``our uniform`` and ``H-PR``: what ``TaskMemory`` does per task and update: draw (uniform,
  or partition share x rank), importance weights, gather the rows, then (H-PR) write the new
  priorities, stale-guarded, and move each to its rank; the re-sort every ``sort_every`` draws
  is included, amortised, from a state where every experience has had its own priority;
- ``torchrl prioritized``: ``PrioritizedSampler`` sample + update, where its compiled
  extension loads (it does not with torch 2.13: reported, not measured);
- one distillation update of the quick start's student (4 MinAtar tasks, 256 -> 128 shared
  layers, KL, RMSProp), to put the replay's share of an update in proportion.

Rounds alternate so machine noise hits all alike; medians are printed with the ratios.
Targets: H-PR / uniform < 2 at batch 32; 4 tasks' H-PR < 5% of one update.

    python benchmarks/replay_throughput.py                 # 1M, batches 32 and 256
    python benchmarks/replay_throughput.py --capacity 20000 --rounds 2   # quick look
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from tensordict import TensorDict

GAMES = ["Breakout", "Freeway", "SpaceInvaders", "Seaquest"]


def entries(n: int, rng: np.random.Generator) -> TensorDict:
    return TensorDict(
        {
            "obs": torch.from_numpy(rng.integers(0, 2, (n, 4, 10, 10), dtype=np.uint8)),
            "q_teacher": torch.from_numpy(rng.normal(size=(n, 6)).astype(np.float32)),
            "value": torch.from_numpy(rng.uniform(0, 1, n).astype(np.float32)),
        },
        batch_size=[n],
    )


def fill(buffer, total: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for start in range(0, total, 50_000):
        buffer.extend(entries(min(50_000, total - start), rng))


def time_per_call(fn, calls: int) -> float:
    fn()  # warm
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=5)
    parser.add_argument("--capacity", type=int, default=200_000, help="experiences per partition")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--sort-every", type=int, default=5000, help="K, as the replay kinds' default")
    parser.add_argument("--calls", type=int, default=2000, help="minibatches per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchrl.data import LazyTensorStorage, RandomSampler, ReplayBuffer

    from lightning_distill.replay import UniformReplay, partitioned_buffer
    from lightning_distill.replay.memory import TaskMemory
    from lightning_distill.replay.sampler import HierarchicalSampler
    from lightning_distill.replay.writer import PartitionWriter
    from lightning_distill.tasks import Task

    total = args.partitions * args.capacity
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; memory of {args.partitions} x {args.capacity:,} = {total:,} experiences"
    )
    task, batch = Task("MinAtar/Breakout"), max(args.batch_sizes)
    torchrl_uniform = ReplayBuffer(storage=LazyTensorStorage(total, device="cpu"), sampler=RandomSampler())
    uniform = TaskMemory(UniformReplay(total).make_buffer(task, None, batch), task, batch, 1)
    hpr = TaskMemory(
        partitioned_buffer(
            PartitionWriter(args.partitions, args.capacity, (0.0, 1.0)),
            HierarchicalSampler(args.partitions, args.capacity, sort_every=args.sort_every, seed=0),
            batch,
        ),
        task,
        batch,
        1,
    )
    t0 = time.perf_counter()
    for buffer in (torchrl_uniform, uniform.buffer, hpr.buffer):
        fill(buffer, total, 0)
    print(f"filled in {time.perf_counter() - t0:.0f} s; H-PR partition sizes {hpr.buffer.writer.sizes.tolist()}")
    sampler, rng = hpr.buffer.sampler, np.random.default_rng(1)
    # as in training: every experience has had its own |delta|, so rank order is no longer slot order
    sampler.update_priority(np.arange(total), rng.random(total))
    sampler.sort_ranks()
    sampler.update_priority(np.arange(0, total, 30), rng.random(len(range(0, total, 30))))  # ~K updates' worth
    t0 = time.perf_counter()
    sampler.sort_ranks()
    sort_ms = (time.perf_counter() - t0) * 1e3
    print(
        f"one re-sort of the rank order: {sort_ms:.1f} ms (every {args.sort_every} minibatches: "
        f"{sort_ms * 1e3 / args.sort_every:.1f} us each)"
    )
    try:
        from torchrl.data import PrioritizedSampler

        torchrl_prioritized = ReplayBuffer(
            storage=LazyTensorStorage(total, device="cpu"), sampler=PrioritizedSampler(total, alpha=0.7, beta=0.5)
        )
        fill(torchrl_prioritized, total, 0)
    except Exception as exc:  # the compiled extension is missing
        torchrl_prioritized = None
        print(f"torchrl prioritized: unavailable ({str(exc).splitlines()[0][:90]})")

    def memory_step(memory: TaskMemory, batch_size: int):
        memory.batch_size = batch_size
        minibatch = memory.sample()
        memory.update_priority(minibatch["index"], torch.rand(batch_size))

    def torchrl_prioritized_step(batch_size: int):
        _, info = torchrl_prioritized.sample(batch_size, return_info=True)
        torchrl_prioritized.update_priority(info["index"], torch.rand(batch_size))

    update_time = distillation_update_time(args.calls // 4)
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for batch_size in args.batch_sizes:
            # each callable binds this round's batch size (b=batch_size): it runs inside this iteration
            kinds = {
                "torchrl uniform": lambda b=batch_size: torchrl_uniform.sample(b),
                "our uniform": lambda b=batch_size: memory_step(uniform, b),
                "H-PR": lambda b=batch_size: memory_step(hpr, b),
            }
            if torchrl_prioritized is not None:
                kinds["torchrl prioritized"] = lambda b=batch_size: torchrl_prioritized_step(b)
            for name, fn in kinds.items():
                results.setdefault((name, batch_size), []).append(time_per_call(fn, args.calls))
    print(f"\none distillation update (4 MinAtar tasks x 32, 256/128 student): {update_time * 1e3:.2f} ms")
    print(
        f"{'batch':>5} {'kind':<20} {'us/minibatch':>13} {'minibatches/s':>14} {'x torchrl uniform':>18} "
        f"{'4 tasks / update':>17}"
    )
    summary = []
    for batch_size in args.batch_sizes:
        base = statistics.median(results[("torchrl uniform", batch_size)])
        for (name, size), times in results.items():
            if size == batch_size:
                t = statistics.median(times)
                share = f"{4 * t / update_time:.1%}" if batch_size == 32 else ""
                print(f"{batch_size:>5} {name:<20} {t * 1e6:>13.1f} {1 / t:>14,.0f} {t / base:>18.2f} {share:>17}")
        hpr = statistics.median(results[("H-PR", batch_size)])
        summary += [f"hpr_b{batch_size}_vs_uniform={hpr / base:.2f}", f"hpr_b{batch_size}_us={hpr * 1e6:.1f}"]
    print("result: " + " ".join(summary))


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
