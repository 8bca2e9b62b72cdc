"""Collection, evaluation and update rates of distillation at the paper's shape, and the paper's
run projected from them.

Two suites: the 5 MinAtar games with their bundled PPO teachers, and the paper's 10 Atari games
with CleanRL ``dqn_atari`` teachers this script writes (random weights: the rates do not depend on
what a teacher knows). For each, a ``Trainer.fit`` of the proposed student measures, with the
clock of the data module's ``collect`` and of the training steps apart:

- agent steps/s of collection (every task's envs, the student acting, the teacher labelling, the
  replay write), with ``DistillDataModule.collect`` as it is (``pipeline``) and with the
  reference: the per-task loop of release 0.6 (one student call, one teacher call, one host copy
  and one replay write per task and step), kept here as it was. Rounds alternate the two;
- updates/s (a minibatch per task, KL loss, RMSProp);
- evaluation agent steps/s (``trainer.validate`` with a step budget per game).

The projection: the paper's proposed-student run is 10 games x 4M agent steps, one update per
4 agent steps of each game (1M updates), and an evaluation of 100,000 steps per game every
25,000 updates (40M evaluation steps): hours = 40M / collection rate + 40M / evaluation rate +
1M / update rate, each measured at the Atari suite's shape.

    python benchmarks/acting_throughput.py                       # both suites, 3 rounds
    python benchmarks/acting_throughput.py --suite minatar --rounds 1 --updates 200   # quick look
"""

from __future__ import annotations

import argparse
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
from lightning_distill.evaluation import EvalBudget, epsilon_greedy  # noqa: E402
from lightning_distill.tasks import PAPER_ATARI_GAMES, Task  # noqa: E402

MINATAR = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
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


def fit_once(args, tasks: list[Task], teachers: list[str], collect, evaluate: bool) -> dict[str, float]:
    import lightning.pytorch as pl

    from lightning_distill.callbacks import EpsilonSchedule
    from lightning_distill.modules import Distillation
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
    )
    # MinAtar: the quick start's shared layers; Atari: the paper's (3136 -> 1028 -> 512 -> 18)
    head_hidden = [256, 128] if tasks[0].backend == "minatar" else "auto"
    model = Distillation(tasks=tasks, architecture="proposed", head_hidden=head_hidden)
    trainer = pl.Trainer(
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
    with timed_collect(clocks, collect):
        trainer.fit(model, datamodule=data)
    out = {"collect": clocks.steps / clocks.collect, "update": args.updates / clocks.update}
    if evaluate:
        start = time.perf_counter()
        trainer.validate(model, datamodule=data, verbose=False)
        out["eval"] = args.eval_steps * len(tasks) / (time.perf_counter() - start)
    return out


def suite(args, name: str) -> dict[str, float]:
    """Median rates over rounds, the reference and the pipeline alternating."""
    if name == "minatar":
        tasks = [Task(f"MinAtar/{''.join(w.title() for w in g.split('_'))}") for g in MINATAR]
        teachers = [f"bundled:ppo/minatar_{g}" for g in MINATAR]
    else:
        tasks = [Task(f"ALE/{g}") for g in PAPER_ATARI_GAMES]
        teachers = [write_cleanrl_teacher(t, Path(args.teacher_dir) / f"{t.game}.cleanrl_model") for t in tasks]
    runs: dict[str, list[dict[str, float]]] = {"reference": [], "pipeline": []}
    for r in range(args.rounds):
        for kind, collect in (("reference", reference_collect), ("pipeline", DistillDataModule.collect)):
            rates = fit_once(args, tasks, teachers, collect, evaluate=kind == "pipeline")
            runs[kind].append(rates)
            print(f"{name} round {r + 1} {kind}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()), flush=True)
    median = {f"{kind}_{key}": statistics.median(r[key] for r in rs) for kind, rs in runs.items() for key in rs[0]}
    median["collect_speedup"] = statistics.median(
        p["collect"] / ref["collect"] for p, ref in zip(runs["pipeline"], runs["reference"], strict=True)
    )
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


def paper_run_hours(rates: dict[str, float]) -> float:
    steps = PAPER_STEPS * PAPER_GAMES
    seconds = (
        steps / rates["pipeline_collect"]
        + PAPER_EVAL_STEPS / rates["pipeline_eval"]
        + steps / STEPS_PER_UPDATE / PAPER_GAMES / rates["pipeline_update"]
    )
    return seconds / 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=["minatar", "atari", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=500, help="updates per fit, after learning_starts")
    parser.add_argument("--learning-starts", type=int, default=500)
    parser.add_argument("--num-envs", type=int, default=4, help="envs per game")
    parser.add_argument("--capacity", type=int, default=20_000, help="replay per game")
    parser.add_argument("--eval-steps", type=int, default=2_000, help="evaluation agent steps per game")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, cuda {torch.cuda.is_available()}",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory() as teacher_dir:
        args.teacher_dir = teacher_dir
        for name in ("minatar", "atari") if args.suite == "both" else (args.suite,):
            results[name] = suite(args, name)
            print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
    line = []
    for name in ("minatar", "atari"):
        if name in results:
            line.append(f"{name}_collect_speedup={results[name]['collect_speedup']:.2f}")
    if "atari" in results:
        line.append(f"paper_run_hours_projected={paper_run_hours(results['atari']):.1f}")
    print("result: " + " ".join(line))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
