"""Lightning callbacks of lightning_distill (installed as the top-level package ``callbacks``)."""

from callbacks.exploration import EpsilonSchedule
from callbacks.progress import RLProgress
from callbacks.teacher_score import TeacherComparison
from callbacks.wandb_media import WandbMedia

__all__ = ["EpsilonSchedule", "RLProgress", "TeacherComparison", "WandbMedia"]
