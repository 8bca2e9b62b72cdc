"""Collection, evaluation and update rates of distillation at the paper's shape, before and
after, and the paper's run projected from them.

Two suites: the 5 MinAtar games with their bundled PPO teachers, and the paper's 10 Atari games
with CleanRL ``dqn_atari`` teachers this script writes (random weights: the rates do not depend on
what a teacher knows). For each, a ``Trainer.fit`` of the proposed student measures, with the
clock of the data module's ``collect`` and of the training steps apart, then a ``validate``:

- agent steps/s of collection (every task's envs, the student acting, the teacher labelling, the
  replay write);
- updates/s (a minibatch per task, KL loss, RMSProp);
- evaluation agent steps/s (``trainer.validate`` with a step budget per game).

Variants, alternating within each round so machine noise hits all alike:

- ``reference``: release 0.6, kept here as it was: collection task by task (a student call, a
  host copy, a teacher call and a replay write per task and step, the envs stepped in line),
  a student call per task in the update, RMSProp one parameter at a time, evaluation task by task;
- ``pipeline``: the package as it is (defaults);
- ``bf16_cl``: the pipeline with ``trainer.precision: bf16-mixed`` and ``channels_last: true``
  (``benchmarks/network_options.py`` measures these options alone);
- ``async_envs``: the pipeline with gymnasium's envs in worker processes (MinAtar; Atari's step
  in ALE's threads in every variant but the reference). Not run by default.

The projection: the paper's proposed-student run is 10 games x 4M agent steps, one update per
4 agent steps of each game (1M updates), and an evaluation of 100,000 steps per game every
25,000 updates (40M evaluation steps): hours = 40M / collection rate + 40M / evaluation rate +
1M / update rate, each measured at the Atari suite's shape, with the fastest variant.

    python benchmarks/acting_throughput.py                       # both suites, 3 rounds
    python benchmarks/acting_throughput.py --suite minatar --rounds 1 --updates 200   # quick look
    python benchmarks/acting_throughput.py --accelerator gpu     # on a GPU machine
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lightning_distill.data import DistillDataModule  # noqa: E402
from lightning_distill.evaluation import EvalBudget, epsilon_greedy, evaluate  # noqa: E402
from lightning_distill.losses import distillation_loss  # noqa: E402
from lightning_distill.modules import Distillation  # noqa: E402
from lightning_distill.tasks import PAPER_ATARI_GAMES, Task  # noqa: E402

MINATAR = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
VARIANTS = ("reference", "pipeline", "bf16_cl", "async_envs")
#: the paper's run (spec section 7): agent steps per game, games, agent steps per update, eval steps
PAPER_STEPS, PAPER_GAMES, STEPS_PER_UPDATE, PAPER_EVAL_STEPS = 4_000_000, 10, 4, 40_000_000


@torch.inference_mode()
def reference_collect(self: DistillDataModule, steps: int) -> None:
    """Release 0.6's ``collect``: task by task, a student call, a host copy, a teacher call and a
    replay write each, then the env step."""
    module = self.acting_module
    device = module.device
    teachers, envs = self.load_teachers(), self.envs
    assert envs is not None
    if next(teachers[0].parameters()).device != device:  # as collect does: on the GPU, once
        teachers = self.teachers = [teacher.to(device) for teacher in teachers]
    for _ in range(steps):
        for i, (task, env, teacher, memory) in enumerate(zip(self.tasks, envs, teachers, self.memories, strict=True)):
            obs = self._obs[i]
            obs_t = torch.as_tensor(obs, device=device)
            greedy = module.policy(i)(obs_t).cpu().numpy()
            actions = epsilon_greedy(greedy, self.epsilon, task.num_actions, self._rng)
            targets, value = teacher.targets_and_value(obs_t)
            memory.add(obs, targets, value, self._new_episode[i])
            step = env.step(actions)
            self._obs[i] = step.obs
            self._new_episode[i] = step.terminated | step.truncated
            finished = env.episodes.pop_finished()
            if finished:
                self.record_episodes(task, finished)
        self.env_steps += self.num_envs * len(self.tasks)


class ReferenceDistillation(Distillation):
    """Release 0.6's update and evaluation: a student call per task, RMSProp one parameter at a
    time, each task evaluated on its own."""

    def training_step(self, batch, batch_idx):
        total = torch.zeros((), device=self.device)
        for i, minibatch in enumerate(batch):
            q_student = self.student(minibatch["obs"], i)
            out = distillation_loss(q_student, minibatch["teacher_logits"], "kl", self.tau_of(i), minibatch["weight"])
            total = total + out.loss
            self.trainer.datamodule.update_priority(i, minibatch["index"], out.priority)
        return total

    def configure_optimizers(self):
        return torch.optim.RMSprop(self.student.parameters(), lr=self.hparams.lr, alpha=0.99, eps=1e-6, foreach=False)

    def validation_step(self, request, batch_idx):
        budget = {k: request[k] for k in ("episodes", "steps", "epsilon", "num_envs", "seed")}
        for i in request["tasks"]:
            self.last_evaluation[self.tasks[i].id] = evaluate(
                self.policy(i), self.tasks[i], device=self.device, **budget
            )


class Clocks:
    """Seconds spent collecting and updating, and the agent steps collected."""

    def __init__(self) -> None:
        self.collect = self.update = 0.0
        self.steps = 0


@contextmanager
def timed_collect(clocks: Clocks, collect):
    """``DistillDataModule.collect`` replaced by ``collect`` with a clock around it."""
    original = DistillDataModule.collect

    def clocked(self, steps: int) -> None:
        start, before = time.perf_counter(), self.env_steps
        collect(self, steps)
        clocks.collect += time.perf_counter() - start
        clocks.steps += self.env_steps - before

    DistillDataModule.collect = clocked  # type: ignore[method-assign]
    try:
        yield
    finally:
        DistillDataModule.collect = original  # type: ignore[method-assign]


def fit_once(args, tasks: list[Task], teachers: list[str], variant: str) -> dict[str, float]:
    """One fit and one validate of ``variant``: its collection, update and evaluation rates."""
    import lightning.pytorch as pl

    from lightning_distill.callbacks import EpsilonSchedule
    from lightning_distill.replay import UniformReplay

    clocks = Clocks()

    class UpdateClock(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clocks.update += time.perf_counter() - self.start

    data = DistillDataModule(
        tasks,
        teachers,
        replay=UniformReplay(args.capacity),
        num_envs=args.num_envs,
        batch_size=32,
        learning_starts=args.learning_starts,
        train_freq=STEPS_PER_UPDATE,
        evaluation=EvalBudget(episodes="auto", steps=args.eval_steps, num_envs=args.num_envs),
        seed=0,
        async_envs=variant == "async_envs",
    )
    # MinAtar: the quick start's shared layers; Atari: the paper's (3136 -> 1028 -> 512 -> 18)
    head_hidden = [256, 128] if tasks[0].backend == "minatar" else "auto"
    module = ReferenceDistillation if variant == "reference" else Distillation
    model = module(tasks=tasks, architecture="proposed", head_hidden=head_hidden, channels_last=variant == "bf16_cl")
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision="bf16-mixed" if variant == "bf16_cl" else "32-true",
        max_steps=args.updates,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        val_check_interval=10 * args.updates,  # no evaluation inside fit: validate() measures it
        num_sanity_val_steps=0,
        max_epochs=-1,
        callbacks=[EpsilonSchedule(decay_steps=10_000), UpdateClock()],
    )
    collect = reference_collect if variant == "reference" else DistillDataModule.collect
    with timed_collect(clocks, collect):
        trainer.fit(model, datamodule=data)
    out = {"collect": clocks.steps / clocks.collect, "update": args.updates / clocks.update}
    start = time.perf_counter()
    trainer.validate(model, datamodule=data, verbose=False)
    out["eval"] = args.eval_steps * len(tasks) / (time.perf_counter() - start)
    return out


def suite(args, name: str) -> dict[str, float]:
    """Median rates over rounds, the variants alternating, and each variant's speedups over the
    reference (medians of the rounds' ratios)."""
    if name == "minatar":
        tasks = [Task(f"MinAtar/{''.join(w.title() for w in g.split('_'))}") for g in MINATAR]
        teachers = [f"bundled:ppo/minatar_{g}" for g in MINATAR]
    else:
        tasks = [Task(f"ALE/{g}") for g in PAPER_ATARI_GAMES]
        teachers = [write_cleanrl_teacher(t, Path(args.teacher_dir) / f"{t.game}.cleanrl_model") for t in tasks]
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in args.variants}
    for r in range(args.rounds):
        for variant in args.variants:
            rates = fit_once(args, tasks, teachers, variant)
            runs[variant].append(rates)
            print(
                f"{name} round {r + 1} {variant}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()), flush=True
            )
    median = {f"{v}_{key}": statistics.median(r[key] for r in rs) for v, rs in runs.items() for key in rs[0]}
    for variant in args.variants[1:]:
        for key in ("collect", "update", "eval"):
            median[f"{variant}_{key}_speedup"] = statistics.median(
                run[key] / ref[key] for run, ref in zip(runs[variant], runs["reference"], strict=True)
            )
    print(f"\n{name}: median rates (agent steps/s; updates/s), and x reference (median of the rounds' ratios)")
    print(f"{'variant':12s} {'collect':>9s} {'x':>5s} {'update':>8s} {'x':>5s} {'eval':>8s} {'x':>5s}")
    for variant in args.variants:
        cells = []
        for key in ("collect", "update", "eval"):
            ratio = median.get(f"{variant}_{key}_speedup", 1.0)
            cells.append(f"{median[f'{variant}_{key}']:9,.1f} {ratio:5.2f}")
        print(f"{variant:12s} " + " ".join(cells))
    return median


def write_cleanrl_teacher(task: Task, path: Path) -> str:
    """A CleanRL dqn_atari.py model file (``network.0`` .. ``network.9``), seeded random weights."""
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(4, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3136, 512),
        nn.ReLU(),
        nn.Linear(512, task.num_actions),
    )
    torch.save({f"network.{k}": v for k, v in network.state_dict().items()}, path)
    return str(path)


def paper_run_hours(rates: dict[str, float], variant: str) -> float:
    steps = PAPER_STEPS * PAPER_GAMES
    seconds = (
        steps / rates[f"{variant}_collect"]
        + PAPER_EVAL_STEPS / rates[f"{variant}_eval"]
        + steps / STEPS_PER_UPDATE / PAPER_GAMES / rates[f"{variant}_update"]
    )
    return seconds / 3600


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=["minatar", "atari", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=500, help="updates per fit, after learning_starts")
    parser.add_argument("--learning-starts", type=int, default=500)
    parser.add_argument("--num-envs", type=int, default=4, help="envs per game")
    parser.add_argument("--capacity", type=int, default=20_000, help="replay per game")
    parser.add_argument("--eval-steps", type=int, default=2_000, help="evaluation agent steps per game")
    parser.add_argument("--accelerator", default="cpu", help="Lightning's accelerator: cpu, gpu")
    parser.add_argument("--variants", default="reference,pipeline,bf16_cl", help="reference first")
    args = parser.parse_args()
    args.variants = args.variants.split(",")
    if args.variants[0] != "reference" or not set(args.variants) <= set(VARIANTS):
        parser.error(f"--variants {args.variants}: reference first, then any of {VARIANTS[1:]}")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(
        f"machine: {cpu or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, GPU {gpu}, accelerator {args.accelerator}",
        flush=True,
    )
    print("arguments: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()), flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as teacher_dir:
        args.teacher_dir = teacher_dir
        for name in ("minatar", "atari") if args.suite == "both" else (args.suite,):
            results[name] = suite(args, name)
    line = []
    for name in ("minatar", "atari"):
        if name in results and len(args.variants) > 1:
            best = max(args.variants[1:], key=lambda v: results[name][f"{v}_collect"])
            line.append(f"{name}_collect_speedup={results[name][f'{best}_collect_speedup']:.2f}")
    if "atari" in results:
        hours = {v: paper_run_hours(results["atari"], v) for v in args.variants}
        fastest = min(hours, key=hours.__getitem__)
        print("paper run projected (hours): " + ", ".join(f"{v} {h:.1f}" for v, h in hours.items()))
        line.append(f"paper_run_hours_projected={hours[fastest]:.1f} projected_with={fastest}")
    print("result: " + " ".join(line))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
