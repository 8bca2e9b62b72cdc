"""Ship a trained teacher inside the package: a slim copy of its checkpoint, its score, and the
command that made it, in ``lightning_distill/teachers/bundled.json``.

    python scripts/bundle_teacher.py runs/teacher_minatar_breakout/version_0/checkpoints/best-*.ckpt \
        --name minatar/breakout --config configs/teacher/minatar_breakout.yaml
"""

from __future__ import annotations

import argparse
import json

from lightning_distill.evaluation import EvalBudget, evaluate
from lightning_distill.teachers import BUNDLED_DIR, export_checkpoint, load_teacher

#: The score recorded with a bundled teacher: the evaluation protocol, over many episodes.
SCORE_BUDGET = EvalBudget(episodes=100, epsilon=0.05, num_envs=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--name", required=True, help="bundled name, e.g. minatar/breakout")
    parser.add_argument("--config", required=True, help="the teacher config that trained it")
    args = parser.parse_args()

    file = f"{args.name}.ckpt"
    export_checkpoint(args.checkpoint, BUNDLED_DIR / file)
    teacher = load_teacher(BUNDLED_DIR / file)
    result = evaluate(teacher.act, teacher.task, **SCORE_BUDGET.as_kwargs())
    registry_path = BUNDLED_DIR / "bundled.json"
    registry = json.loads(registry_path.read_text()) if registry_path.exists() else {}
    registry[args.name] = {
        "file": file,
        "task": teacher.task.label,
        "score": round(result.mean, 2),
        "score_std": round(result.std, 2),
        "score_protocol": f"{result.count} episodes, epsilon {SCORE_BUDGET.epsilon}, seed {SCORE_BUDGET.seed}",
        "command": f"OMP_NUM_THREADS=1 python -m lightning_distill fit --config {args.config}",
    }
    registry_path.write_text(json.dumps(dict(sorted(registry.items())), indent=2) + "\n")
    print(f"{args.name}: {result.mean:.2f} +- {result.std:.2f} over {result.count} episodes -> {file}")


if __name__ == "__main__":
    main()
