"""bf16 autocast, channels-last and ``torch.compile`` of the proposed student, each against plain
float32 eager in the same run, for acting and for updates.

Item 5 of issue 20: an option is kept only where it pays. Two shapes, as the distillation runs
have them:

- ``minatar``: 5 MinAtar games, shared layers 256 -> 128 (the quick start's student);
- ``atari``: 10 Atari games, 84x84x4 frames, Nature DQN extractors, the paper's 1028 -> 512.

Acting is one ``forward_tasks`` call over every game's ``--acting-rows`` observations under
``inference_mode``; an update is a minibatch of 32 per game, KL loss, backward, RMSProp. Each
variant is timed after a warm-up (for ``compile``, the compile time is reported apart); rounds
alternate the variants so machine noise hits all alike, and the median round counts. bf16 runs
the forward under ``torch.autocast("cpu"/"cuda", torch.bfloat16)``, keeping float32 weights.

    python benchmarks/network_options.py                          # both shapes, CPU
    python benchmarks/network_options.py --shape minatar --rounds 1 --iters 20   # quick look
    python benchmarks/network_options.py --device cuda            # on a GPU machine
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import time
from collections.abc import Callable

import torch

from lightning_distill.losses import distillation_loss
from lightning_distill.students import Student, make_student
from lightning_distill.tasks import PAPER_ATARI_GAMES, Task

SHAPES: dict[str, tuple[list[str], list[int]]] = {
    "minatar": ([f"MinAtar/{g}" for g in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")], [256, 128]),
    "atari": ([f"ALE/{g}" for g in PAPER_ATARI_GAMES], [1028, 512]),
}
VARIANTS = ("fp32", "bf16", "channels_last", "bf16_channels_last", "compile")


def batches(tasks: list[Task], rows: int, device: torch.device) -> list[torch.Tensor]:
    return [
        torch.randint(0, 2 if t.backend == "minatar" else 256, (rows, *t.obs_shape), dtype=torch.uint8, device=device)
        for t in tasks
    ]


def variant_of(
    student: Student, name: str, device: torch.device
) -> tuple[Student, Callable, contextlib.AbstractContextManager]:
    """(the model, how to call forward_tasks, the autocast context) for one variant."""
    model = copy.deepcopy(student)
    autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
    forward: Callable = model.forward_tasks
    if "bf16" in name:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    if "channels_last" in name:
        model = model.to(memory_format=torch.channels_last)
    elif name == "compile":
        forward = torch.compile(model.forward_tasks, dynamic=False)
    return model, forward, autocast


def measure(args, shape: str) -> dict[str, float]:
    device = torch.device(args.device)
    ids, hidden = SHAPES[shape]
    tasks = [Task(i) for i in ids]
    torch.manual_seed(0)
    student = make_student("proposed", tasks, head_hidden=hidden).to(device)
    acting_obs = batches(tasks, args.acting_rows, device)
    train_obs = batches(tasks, 32, device)
    targets = [torch.randn(32, t.num_actions, device=device) for t in tasks]
    weight = torch.ones(32, device=device)
    if args.device == "cuda":
        sync = torch.cuda.synchronize
    else:

        def sync() -> None:
            return None

    def to_input(obs: list[torch.Tensor], name: str) -> list[torch.Tensor]:
        if "channels_last" in name:
            return [o.contiguous(memory_format=torch.channels_last) if o.dim() == 4 else o for o in obs]
        return obs

    setups = {}
    for name in VARIANTS:
        model, forward, autocast = variant_of(student, name, device)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
        act_in, train_in = to_input(acting_obs, name), to_input(train_obs, name)

        def act(forward=forward, autocast=autocast, act_in=act_in) -> None:
            with torch.inference_mode(), autocast:
                forward(act_in)

        def update(forward=forward, autocast=autocast, train_in=train_in, optimizer=optimizer) -> None:
            with autocast:
                qs = forward(train_in)
                loss = sum(
                    distillation_loss(q.float(), t, "kl", 0.01, weight).loss for q, t in zip(qs, targets, strict=True)
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        start = time.perf_counter()
        for _ in range(3):  # compiles here
            update()
            act()
        sync()
        setups[name] = (act, update, time.perf_counter() - start)
    rates: dict[str, list[float]] = {f"{k}_{n}": [] for n in VARIANTS for k in ("act", "update")}
    for _ in range(args.rounds):
        for name, (act, update, _) in setups.items():
            for kind, fn in (("act", act), ("update", update)):
                sync()
                start = time.perf_counter()
                for _ in range(args.iters):
                    fn()
                sync()
                rates[f"{kind}_{name}"].append(args.iters / (time.perf_counter() - start))
    result = {key: statistics.median(values) for key, values in rates.items()}
    print(f"\n{shape}: {len(tasks)} games, acting {args.acting_rows} rows a game, updates 32 a game ({args.device})")
    print(
        f"{'variant':20s} {'acting calls/s':>15s} {'x fp32':>7s} {'updates/s':>10s} {'x fp32':>7s} {'warm-up s':>10s}"
    )
    for name in VARIANTS:
        act_rate, update_rate = result[f"act_{name}"], result[f"update_{name}"]
        print(
            f"{name:20s} {act_rate:15.1f} {act_rate / result['act_fp32']:7.2f} "
            f"{update_rate:10.1f} {update_rate / result['update_fp32']:7.2f} {setups[name][2]:10.1f}"
        )
    return result


def main() -> None:
    from lightning_distill.cli import quiet_third_party_output

    quiet_third_party_output()  # Lightning's tips and torch's deprecations are no benchmark's output
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=[*SHAPES, "both"], default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=50, help="calls per variant and round")
    parser.add_argument("--acting-rows", type=int, default=4, help="observations per game in an acting call (num_envs)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    threads = torch.get_num_threads()
    print(f"machine: {cpu or platform.machine()}, {threads} threads, torch {torch.__version__}, GPU {gpu}")
    shapes = list(SHAPES) if args.shape == "both" else [args.shape]
    line = []
    for shape in shapes:
        result = measure(args, shape)
        for name in VARIANTS[1:]:
            line.append(f"{shape}_act_{name}={result[f'act_{name}'] / result['act_fp32']:.2f}")
            line.append(f"{shape}_update_{name}={result[f'update_{name}'] / result['update_fp32']:.2f}")
    print("result: " + " ".join(line))


if __name__ == "__main__":
    main()
