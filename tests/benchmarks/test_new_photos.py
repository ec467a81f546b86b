"""benchmarks/new_photos.py: the three sets of photos it makes never share a photo."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from new_photos import HELD_BACK, UNSEEN, WATCHED, choose


def test_unseen_held_back_and_watched_photos_are_disjoint_and_sized_as_asked():
    names = [f"id_{number}_value_1_2.jpg" for number in range(100)]
    sets = choose(names, unseen=15, hold_back=25, watched=0)
    assert [len(sets[key]) for key in (UNSEEN, HELD_BACK, WATCHED)] == [15, 25, 60]
    assert sets[UNSEEN] | sets[HELD_BACK] | sets[WATCHED] == set(names)
    assert not (sets[UNSEEN] & sets[HELD_BACK] or sets[UNSEEN] & sets[WATCHED] or sets[HELD_BACK] & sets[WATCHED])
    assert choose(list(reversed(names)), 15, 25, 0) == sets, "by the names' hash, not their order"
    assert len(choose(names, 15, 25, watched=30)[WATCHED]) == 30
