from wms.core.progress import EpochProgress, counted, duration


def test_counted_tells_each_step_and_the_total():
    heard = []
    assert list(counted("abc", 3, lambda done, total: heard.append((done, total)))) == ["a", "b", "c"]
    assert heard == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_the_time_left_follows_the_pace_of_the_epochs_run_here():
    now = [100.0]
    progress = EpochProgress(total_epochs=125, cycles=3, clock=lambda: now[0])
    now[0] += 40
    assert progress.after(1) == "cycle 1/3, epoch 1/125, 124 left, about 83 min to go"
    now[0] += 40
    assert progress.after(2) == "cycle 1/3, epoch 2/125, 123 left, about 82 min to go"
    now[0] += 40 * 59
    assert progress.after(61, cycle=2) == "cycle 2/3, epoch 61/125, 64 left, about 43 min to go"


def test_a_resumed_training_paces_only_the_epochs_it_ran():
    now = [0.0]
    progress = EpochProgress(total_epochs=10, clock=lambda: now[0])
    now[0] += 30
    assert progress.after(7) == "epoch 7/10, 3 left, about 2 min to go"


def test_durations_read_as_people_say_them():
    assert [duration(s) for s in (45, 600, 7500)] == ["45 s", "10 min", "2 h 05 min"]
