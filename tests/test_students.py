"""Student architectures: output shapes, which parameters are shared, and action masking."""

import pytest
import torch

from lightning_distill.errors import ConfigError
from lightning_distill.networks import make_encoder
from lightning_distill.students import AMNStudent, DistStudent, ProposedStudent, make_student, pad_obs
from lightning_distill.tasks import Task

MINATAR = [Task("MinAtar/Breakout"), Task("MinAtar/Seaquest")]  # 4 and 10 channels
ATARI = [Task("ALE/Breakout"), Task("ALE/Pong")]  # 4 and 6 actions of the 18


def obs_batch(task: Task, n: int = 3) -> torch.Tensor:
    high = 256 if task.backend == "atari" else 2
    return torch.randint(0, high, (n, *task.obs_shape), dtype=torch.uint8)


def grads_after_task_loss(student, tasks, task_index: int) -> dict[str, bool]:
    """Which parameters get a gradient from one task's outputs."""
    student.zero_grad()
    student(obs_batch(tasks[task_index]), task_index).sum().backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in student.named_parameters()}


@pytest.mark.parametrize("architecture", ["proposed", "dist", "amn"])
def test_each_architecture_outputs_the_tasks_own_actions(architecture):
    for tasks in (MINATAR, ATARI):
        student = make_student(architecture, tasks, head_hidden=[32, 16] if architecture == "proposed" else [16])
        for i, task in enumerate(tasks):
            assert student(obs_batch(task), i).shape == (3, task.num_actions)


def test_proposed_student_has_the_papers_layer_sizes_on_atari():
    student = make_student("proposed", ATARI)
    shared = [m for m in student.shared if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in shared] == [(3136, 1028), (1028, 512), (512, 18)]
    assert len(student.extractors) == 2 and all(isinstance(p, torch.nn.Identity) for p in student.projections)


def test_proposed_shares_fc_layers_and_keeps_one_extractor_per_task():
    student = ProposedStudent(MINATAR, head_hidden=[32], extractors=[make_encoder(t) for t in MINATAR])
    touched = grads_after_task_loss(student, MINATAR, 0)
    assert all(touched[n] for n in touched if n.startswith(("shared.", "extractors.0.")))
    assert not any(touched[n] for n in touched if n.startswith("extractors.1."))
    assert student.extractors[0].net[0].in_channels == 4 and student.extractors[1].net[0].in_channels == 10


def test_dist_shares_the_extractor_and_keeps_one_head_per_task():
    student = DistStudent(MINATAR, head_hidden=[32], extractor_hidden=[])
    touched = grads_after_task_loss(student, MINATAR, 1)
    assert all(touched[n] for n in touched if n.startswith(("extractor.", "heads.1.")))
    assert not any(touched[n] for n in touched if n.startswith("heads.0."))
    assert student.extractor.net[0].in_channels == 10  # padded to the widest task


def test_amn_shares_every_parameter():
    student = AMNStudent(MINATAR, head_hidden=[32], extractor_hidden=[])
    for i in range(2):
        assert all(grads_after_task_loss(student, MINATAR, i).values())


@pytest.mark.parametrize("architecture", ["proposed", "amn"])
def test_actions_outside_a_tasks_set_get_no_gradient_and_are_never_chosen(architecture):
    student = make_student(architecture, ATARI, head_hidden=[16] if architecture == "amn" else [32, 16])
    head = student.shared[-1]
    breakout = ATARI[0]  # NOOP, FIRE, RIGHT, LEFT = union 0, 1, 3, 4
    outside = sorted(set(range(18)) - set(breakout.action_map))
    student.zero_grad()
    student(obs_batch(breakout), 0).sum().backward()
    assert head.weight.grad[outside].abs().sum() == 0 and head.bias.grad[outside].abs().sum() == 0
    assert head.bias.grad[list(breakout.action_map)].abs().min() > 0
    with torch.no_grad():
        head.bias[outside] = 1e6  # make every masked output the largest
    q = student(obs_batch(breakout, 50), 0)
    assert q.shape[1] == 4 and q.max() < 1e5  # the masked outputs never reach the task


def test_proposed_projects_extractors_of_different_widths_to_one():
    tasks = [Task("MinAtar/Breakout"), Task("CartPole-v1")]
    student = make_student("proposed", tasks, head_hidden=[32], extractor_hidden=[64, 64])
    assert isinstance(student.projections[0], torch.nn.Identity)  # MinAtar: 1024 features
    assert student.projections[1][0].in_features == 64 and student.projections[1][0].out_features == 1024
    assert student(torch.randn(2, 4), 1).shape == (2, 2)


def test_shared_extractors_need_one_kind_of_input():
    with pytest.raises(ConfigError, match="use architecture: proposed"):
        make_student("dist", [Task("MinAtar/Breakout"), Task("CartPole-v1")])
    with pytest.raises(ConfigError, match="unknown architecture 'big'"):
        make_student("big", MINATAR)


def test_pad_obs_zero_pads_channels_at_the_end():
    obs = torch.ones(2, 4, 10, 10)
    padded = pad_obs(obs, (10, 10, 10))
    assert padded.shape == (2, 10, 10, 10)
    assert padded[:, :4].eq(1).all() and padded[:, 4:].eq(0).all()


@pytest.mark.parametrize("architecture", ["proposed", "dist", "amn"])
def test_acting_in_all_tasks_at_once_gives_each_task_what_its_own_call_gives(architecture):
    torch.manual_seed(0)
    for tasks in (MINATAR, ATARI):
        student = make_student(architecture, tasks, head_hidden=[32, 16] if architecture == "proposed" else [16])
        obs = [obs_batch(task, n) for task, n in zip(tasks, (3, 5), strict=True)]  # batches may differ in size
        together = student.forward_tasks(obs)
        for i, (task, q) in enumerate(zip(tasks, together, strict=True)):
            assert q.shape == (len(obs[i]), task.num_actions)
            torch.testing.assert_close(q, student(obs[i], i), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("architecture", ["proposed", "dist", "amn"])
def test_acting_in_some_tasks_gives_each_of_them_what_its_own_call_gives(architecture):
    """Evaluation drops the tasks whose episodes are done: a subset, in any order."""
    torch.manual_seed(0)
    student = make_student(architecture, MINATAR, head_hidden=[16])
    obs = [obs_batch(MINATAR[1], 4)]
    (q,) = student.forward_tasks(obs, tasks=[1])
    assert q.shape == (4, MINATAR[1].num_actions)
    torch.testing.assert_close(q, student(obs[0], 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="one batch per task"):
        student.forward_tasks(obs, tasks=[0, 1])


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_minatar_acting_at_a_few_rows_runs_on_pytorchs_own_kernels_and_no_other_code_sees_a_flag_flip():
    """The conv kernel for acting depends on the tasks and the rows alone; it is chosen for the
    calls inside ``acting_kernels`` only: torch's process-wide flag never changes, and another
    thread acting at the same time keeps oneDNN."""
    import threading

    from lightning_distill.networks import SMALL_CONV_ROWS, acting_kernels

    student = make_student("proposed", MINATAR, head_hidden=[16])
    obs = [obs_batch(task, 4) for task in MINATAR]
    before = torch.backends.mkldnn.enabled
    with torch.inference_mode():
        default = student.forward_tasks(obs)
        with torch.backends.mkldnn.flags(enabled=False):
            pytorch_kernels = student.forward_tasks(obs)
        seen_by_thread = []
        with acting_kernels(MINATAR, SMALL_CONV_ROWS):
            assert torch.backends.mkldnn.enabled == before
            native = student.forward_tasks(obs)
            thread = threading.Thread(target=lambda: seen_by_thread.append(student.forward_tasks(obs)))
            thread.start()
            thread.join()
        for tasks, rows in ((MINATAR, SMALL_CONV_ROWS + 1), (ATARI, 1), ([*MINATAR, ATARI[0]], 1)):
            with acting_kernels(tasks, rows):
                assert torch.equal(student.forward_tasks(obs[:1], [0])[0], default[0])  # oneDNN kept
    assert torch.backends.mkldnn.enabled == before
    for a, b, c, d in zip(default, native, pytorch_kernels, seen_by_thread[0], strict=True):
        assert torch.equal(b, c)  # exactly what the oneDNN-disabled path computes
        assert torch.equal(d, a)  # the other thread kept oneDNN
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # the same values, not the same bits
