"""Lightning callbacks of lightning_distill: epsilon schedule, teacher comparison, W&B media, progress.
Configs name them ``lightning_distill.callbacks.<Name>``."""

from lightning_distill.callbacks.exploration import EpsilonSchedule
from lightning_distill.callbacks.progress import RLProgress
from lightning_distill.callbacks.teacher_score import TeacherComparison
from lightning_distill.callbacks.wandb_media import WandbMedia

__all__ = ["EpsilonSchedule", "RLProgress", "TeacherComparison", "WandbMedia"]
