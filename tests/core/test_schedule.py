"""Which classes a correction round corrects: the official SegTHOR (``new``) and VOC (``flagged``) schedules."""
import pytest

from adele.core import RoundSchedule

# the example of the official code's behaviour: onsets (flag epochs) 7, 12, 15, 24, a round every 10 epochs
FLAGS = {1: 7, 2: 12, 3: 15, 4: 24}
ALL = [1, 2, 3, 4]
EXPECTED = {
    "new": {7: [1], 10: [1], 12: [2], 15: [3], 20: [1, 2, 3], 24: [4], 30: ALL, 40: ALL},
    "flagged": {7: [1], 10: [1], 12: [1, 2], 15: [1, 2, 3], 20: [1, 2, 3], 24: ALL, 30: ALL, 40: ALL},
    "once": {7: [1], 12: [2], 15: [3], 24: [4]},  # each class at its first flag, never again
}


def _run(mode, check, epochs=40, every=10):
    sched = RoundSchedule(ALL, mode, every)
    out = {}
    for epoch in range(1, epochs + 1):
        got = sched.step(epoch, lambda c: check(c, epoch))
        if got:
            out[epoch] = got
    return out


@pytest.mark.parametrize("mode", ["new", "flagged", "once"])
def test_rounds_and_classes_of_the_official_example(mode):
    assert _run(mode, lambda c, e: e >= FLAGS[c]) == EXPECTED[mode]


def test_new_rechecks_a_corrected_class_before_it_is_corrected_again():
    # class 1 passes at 7, fails its re-check from epoch 9 to 19, passes again from 20
    passes = lambda c, e: c == 1 and (7 <= e <= 8 or e >= 20)  # noqa: E731
    assert _run("new", passes) == {7: [1], 20: [1], 30: [1], 40: [1]}
    # the flagged schedule keeps the first flag
    assert _run("flagged", passes) == {7: [1], 10: [1], 20: [1], 30: [1], 40: [1]}


def test_new_checks_only_classes_that_are_not_due():
    calls = []
    sched = RoundSchedule([1, 2], "new", 10)
    sched.step(1, lambda c: calls.append(c) or c == 1)
    assert calls == [1, 2]
    calls.clear()
    sched.step(2, lambda c: calls.append(c) or False)  # class 1 was due (frozen now): re-checked only when not due
    assert calls == [2]


def test_state_dict_round_trip_continues_identically():
    check = lambda c, e: e >= FLAGS[c]  # noqa: E731
    a = RoundSchedule(ALL, "new", 10)
    for e in range(1, 13):
        a.step(e, lambda c: check(c, e))
    b = RoundSchedule(ALL, "new", 10)
    b.load_state_dict(a.state_dict())
    for e in range(13, 41):
        assert a.step(e, lambda c: check(c, e)) == b.step(e, lambda c: check(c, e))


def test_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        RoundSchedule([1], "all", 10)
    with pytest.raises(ValueError, match="every"):
        RoundSchedule([1], "new", 0)
