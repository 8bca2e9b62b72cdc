"""Env steps and updates per second of a distillation ``fit`` against a minimal PyTorch loop.

Both do the same work: the same MinAtar tasks and bundled teachers, the same proposed student
(initialised from the teachers), epsilon-greedy acting, the teacher's Q-values computed at
insertion, one update of a minibatch per task every ``train_freq`` steps, KL loss, RMSProp.
The minimal loop keeps its replay in preallocated tensors and samples with ``torch.randint``;
the pipeline is the real one (Lightning Trainer, DistillDataModule, TorchRL buffers). Rounds
alternate so machine noise hits both alike. Both student sizes are measured in one run: the
quick start's shared layers (256 -> 128) and the paper's (1028 -> 512). Target: pipeline /
minimal >= 0.95 (median over rounds) at both.

    python benchmarks/distill_throughput.py                      # 5 rounds at each size
    python benchmarks/distill_throughput.py --sizes small --rounds 2 --updates 500   # quick look
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from lightning_distill.envs import make_vec_env
from lightning_distill.evaluation import epsilon_greedy
from lightning_distill.losses import distillation_loss
from lightning_distill.students import make_student
from lightning_distill.tasks import Task
from lightning_distill.teachers import bundled_teachers, load_teacher

GAMES = ["Breakout", "Freeway", "SpaceInvaders", "Seaquest"]
SIZES = {"small": [256, 128], "paper": [1028, 512]}  # the student's shared layers


def pipeline(args, tasks: list[Task], teachers: list[str]) -> tuple[float, float]:
    """(env steps/s, updates/s) of Trainer.fit after ``learning_starts``, from first to last update."""
    import lightning.pytorch as pl

    from lightning_distill.callbacks import EpsilonSchedule
    from lightning_distill.data import DistillDataModule
    from lightning_distill.modules import Distillation
    from lightning_distill.replay import UniformReplay

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.start, self.steps0 = time.perf_counter(), trainer.datamodule.env_steps

        def on_train_end(self, trainer, pl_module):
            self.seconds = time.perf_counter() - self.start
            self.steps = trainer.datamodule.env_steps - self.steps0

    clock = Clock()
    data = DistillDataModule(
        tasks,
        teachers,
        replay=UniformReplay(args.capacity),
        num_envs=args.num_envs,
        batch_size=args.batch_size,
        learning_starts=args.learning_starts,
        train_freq=args.train_freq,
        seed=0,
    )
    model = Distillation(tasks=tasks, architecture="proposed", head_hidden=args.hidden, lr=args.lr)
    trainer = pl.Trainer(
        max_steps=args.updates,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        max_epochs=-1,
        callbacks=[EpsilonSchedule(decay_steps=10_000), clock],
    )
    trainer.fit(model, datamodule=data)
    return clock.steps / clock.seconds, args.updates / clock.seconds


def minimal_loop(args, tasks: list[Task], teacher_refs: list[str]) -> tuple[float, float]:
    """The same work, written as one plain loop."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    teachers = [load_teacher(ref, task) for ref, task in zip(teacher_refs, tasks, strict=True)]
    student = make_student("proposed", tasks, args.hidden)
    for extractor, teacher in zip(student.extractors, teachers, strict=True):
        extractor.load_state_dict(teacher.network.features.state_dict())
    optimizer = torch.optim.RMSprop(student.parameters(), lr=args.lr, alpha=0.99, eps=1e-6)
    envs = [make_vec_env(t, args.num_envs, seed=1000 * i) for i, t in enumerate(tasks)]
    obs = [env.reset() for env in envs]
    memory_obs = [torch.zeros((args.capacity, *t.obs_shape), dtype=torch.uint8) for t in tasks]
    memory_q = [torch.zeros((args.capacity, t.num_actions)) for t in tasks]
    memory_v = [torch.zeros(args.capacity) for _ in tasks]
    size, cursor = 0, 0
    env_steps, updates, start = 0, 0, None
    while updates < args.updates:
        for _ in range(args.train_freq):
            epsilon = max(0.1, 1.0 - 0.9 * env_steps / len(tasks) / 10_000)
            slots = (cursor + np.arange(args.num_envs)) % args.capacity
            for i, (task, env) in enumerate(zip(tasks, envs, strict=True)):
                with torch.inference_mode():
                    o = torch.as_tensor(obs[i])
                    greedy = student(o, i).argmax(dim=-1).numpy()
                    teacher_logits = teachers[i].network(o)
                    memory_q[i][slots], memory_v[i][slots] = teacher_logits, teacher_logits.max(dim=-1).values
                memory_obs[i][slots] = o
                obs[i] = env.step(epsilon_greedy(greedy, epsilon, task.num_actions, rng)).obs
            cursor, size = (cursor + args.num_envs) % args.capacity, min(size + args.num_envs, args.capacity)
            if start is not None:
                env_steps += args.num_envs * len(tasks)
        if size < args.learning_starts:
            continue
        if start is None:
            start = time.perf_counter()
        loss = torch.zeros(())
        for i in range(len(tasks)):
            index = torch.randint(0, size, (args.batch_size,))
            loss = loss + distillation_loss(student(memory_obs[i][index], i), memory_q[i][index]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        updates += 1
    seconds = time.perf_counter() - start
    for env in envs:
        env.close()
    return env_steps / seconds, updates / seconds


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="+", default=GAMES)
    parser.add_argument("--updates", type=int, default=1500, help="updates per run at the quick start's size")
    parser.add_argument("--paper-updates", type=int, default=600, help="updates per run at the paper's size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--train-freq", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = [Task(f"MinAtar/{g}") for g in args.games]
    # the DQN teachers (bundled:minatar/<game>), as the figures in the docs were measured with
    dqn = {e["task"]: f"bundled:{n}" for n, e in bundled_teachers().items() if n.startswith("minatar/")}
    missing = [t.id for t in tasks if t.id not in dqn]
    if missing:
        parser.error(f"no bundled DQN teacher for {missing}; bundled for: {sorted(dqn)}")
    teachers = [dqn[t.id] for t in tasks]
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"{len(tasks)} tasks x {args.num_envs} envs, train_freq {args.train_freq}, batch {args.batch_size}"
    )
    summary = []
    for size in args.sizes:
        run = argparse.Namespace(**vars(args))
        run.hidden = SIZES[size]
        run.updates = args.updates if size == "small" else args.paper_updates
        ratios = []
        for r in range(args.rounds):  # the order alternates, so warm-up and drift hit both alike
            if r % 2 == 0:
                steps_p, updates_p = pipeline(run, tasks, teachers)
                steps_m, updates_m = minimal_loop(run, tasks, teachers)
            else:
                steps_m, updates_m = minimal_loop(run, tasks, teachers)
                steps_p, updates_p = pipeline(run, tasks, teachers)
            ratios.append(updates_p / updates_m)
            print(
                f"{size} {run.hidden} round {r}: pipeline {steps_p:7.0f} env steps/s {updates_p:6.1f} updates/s | "
                f"minimal loop {steps_m:7.0f} env steps/s {updates_m:6.1f} updates/s | ratio {ratios[-1]:.3f}",
                flush=True,
            )
        median = statistics.median(ratios)
        rounds = ", ".join(f"{r:.3f}" for r in sorted(ratios))
        print(f"{size}: median ratio (pipeline / minimal loop, updates/s) {median:.3f}, rounds {rounds}")
        summary.append(f"pipeline_vs_minimal_{size}={median:.3f}")
    print("result: " + " ".join(summary) + f" rounds={args.rounds}")


if __name__ == "__main__":
    main()
