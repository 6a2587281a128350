"""When `jejak serve` signs a checkpoint (issue 17, item 4)."""

from jejak.checkpointer import checkpoint_due


def test_nothing_new_means_no_checkpoint_however_long_ago() -> None:
    assert not checkpoint_due(10, 10, 10**6, interval=60, after=5)
    assert not checkpoint_due(0, 0, 10**6, interval=60, after=5)


def test_the_interval_signs_any_growth() -> None:
    assert checkpoint_due(11, 10, 60, interval=60, after=1000)
    assert not checkpoint_due(11, 10, 59.9, interval=60, after=1000)


def test_the_size_threshold_does_not_wait_for_the_interval() -> None:
    assert checkpoint_due(15, 10, 0, interval=60, after=5)
    assert not checkpoint_due(14, 10, 0, interval=60, after=5)


def test_zero_disables_a_trigger() -> None:
    assert not checkpoint_due(10**6, 0, 10**6, interval=0, after=0)
    assert checkpoint_due(1, 0, 0, interval=0, after=1)
    assert checkpoint_due(1, 0, 1, interval=1, after=0)
