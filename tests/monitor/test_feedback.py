"""Priority feedback (wire-format.md §6.4)."""

from __future__ import annotations

from hami.monitor.feedback import Feedback, Update, feedback


def test_idle_containers_decay_and_unblock() -> None:
    assert feedback([Feedback(1, 1, ("g",)), Feedback(-1, 1, ("g",))]) == [
        Update(0, 0),
        Update(0, 0),
    ]


def test_a_higher_priority_active_container_blocks_others_on_its_device() -> None:
    result = feedback([Feedback(5, 0, ("g",)), Feedback(5, 1, ("g",)), Feedback(5, 1, ("other",))])
    assert result == [Update(4, 0), Update(-1, 1), Update(4, 0)]


def test_same_priority_sharing_turns_the_switch_on() -> None:
    assert feedback([Feedback(3, 1, ("g",)), Feedback(3, 1, ("g",))]) == [
        Update(2, 1),
        Update(2, 1),
    ]


def test_negative_priorities_are_not_counted() -> None:
    assert feedback([Feedback(3, -1, ("g",)), Feedback(3, 1, ("g",))]) == [
        Update(2, 0),
        Update(2, 0),
    ]
