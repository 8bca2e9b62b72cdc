"""Task ids, action maps into the union space, and one-line errors for unknown names."""

import pytest

from lightning_distill.tasks import PAPER_ATARI_GAMES, Task, TaskError

# ALE action indices: NOOP 0, FIRE 1, UP 2, RIGHT 3, LEFT 4, DOWN 5, UPRIGHT 6, UPLEFT 7,
# DOWNRIGHT 8, DOWNLEFT 9, UPFIRE 10, RIGHTFIRE 11, LEFTFIRE 12, DOWNFIRE 13, UPRIGHTFIRE 14,
# UPLEFTFIRE 15, DOWNRIGHTFIRE 16, DOWNLEFTFIRE 17
PAPER_ACTION_MAPS = {
    "BeamRider": (0, 1, 2, 3, 4, 6, 7, 11, 12),
    "Breakout": (0, 1, 3, 4),
    "Enduro": (0, 1, 3, 4, 5, 8, 9, 11, 12),
    "Freeway": (0, 2, 5),
    "MsPacman": (0, 2, 3, 4, 5, 6, 7, 8, 9),
    "Pong": (0, 1, 3, 4, 11, 12),
    "Qbert": (0, 1, 2, 3, 4, 5),
    "Seaquest": tuple(range(18)),
    "SpaceInvaders": (0, 1, 3, 4, 11, 12),
    "Riverraid": tuple(range(18)),
}


@pytest.mark.parametrize("game", PAPER_ATARI_GAMES)
def test_paper_game_maps_minimal_action_set_into_18_ale_actions(game):
    task = Task(f"ALE/{game}")
    assert task.backend == "atari"
    assert task.union_size == 18
    assert task.action_map == PAPER_ACTION_MAPS[game]
    assert task.num_actions == len(PAPER_ACTION_MAPS[game])
    assert task.obs_shape == (4, 84, 84)


def test_fire_is_the_same_union_index_in_every_game_that_has_it():
    fire_games = [g for g in PAPER_ATARI_GAMES if 1 in Task(f"ALE/{g}").action_map]
    assert set(fire_games) == {g for g, m in PAPER_ACTION_MAPS.items() if 1 in m}
    assert "Freeway" not in fire_games and "MsPacman" not in fire_games


def test_full_action_space_is_the_identity_map():
    assert Task("ALE/Pong", full_action_space=True).action_map == tuple(range(18))


def test_version_suffix_is_accepted_for_atari_and_minatar():
    assert Task("ALE/Pong-v5").game == "Pong"
    assert Task("MinAtar/Breakout-v0").backend == "minatar"


@pytest.mark.parametrize(
    "game,channels", [("Asterix", 4), ("Breakout", 4), ("Freeway", 7), ("Seaquest", 10), ("SpaceInvaders", 6)]
)
def test_minatar_is_channels_first_with_six_union_actions(game, channels):
    task = Task(f"MinAtar/{game}")
    assert task.obs_shape == (channels, 10, 10)
    assert task.action_map == tuple(range(6)) and task.union_size == 6


def test_gym_tasks_report_their_spaces():
    cartpole = Task("CartPole-v1")
    assert (cartpole.backend, cartpole.obs_shape, cartpole.num_actions, cartpole.discrete) == ("gym", (4,), 2, True)
    acrobot = Task("Acrobot-v1")
    assert acrobot.num_actions == 3 and acrobot.obs_shape == (6,)


@pytest.mark.parametrize(
    "bad,suggestion",
    [
        ("ALE/Breakot", "ALE/Breakout"),
        ("MinAtar/Pong", "MinAtar/Breakout"),
        ("CartPol-v1", "CartPole-v1"),
    ],
)
def test_unknown_task_fails_with_one_line_listing_valid_names(bad, suggestion):
    with pytest.raises(TaskError) as info:
        Task(bad)
    message = str(info.value)
    assert "\n" not in message
    assert repr(bad) in message and suggestion in message and "Valid:" in message


def test_options_that_a_backend_cannot_honour_are_rejected():
    with pytest.raises(TaskError, match="no no-op action"):
        Task("CartPole-v1", noop_max=5)
    with pytest.raises(TaskError, match="full_action_space"):
        Task("MinAtar/Breakout", full_action_space=True)
    with pytest.raises(TaskError, match="sticky_action_prob"):
        Task("ALE/Pong", sticky_action_prob=1.5)


def test_task_round_trips_through_plain_dicts():
    task = Task("ALE/Pong", noop_max=10, sticky_action_prob=0.25)
    assert Task.coerce(task.to_dict()) == task
    with pytest.raises(TaskError, match="unknown task option"):
        Task.coerce({"id": "ALE/Pong", "noop": 3})
