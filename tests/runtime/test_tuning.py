"""Interpreter-wide tuning: what ``trizab serve`` applies, and that only it does."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from trizab.runtime import tuning


@pytest.fixture
def restored() -> Iterator[None]:
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restored")
def test_standalone_raises_gen0_threshold_and_keeps_switch_interval() -> None:
    gc.set_threshold(700, 10, 10)
    sys.setswitchinterval(0.005)
    tuning.tune_process(replicated=False)
    assert gc.get_threshold() == (tuning.GC_GEN0_THRESHOLD, 10, 10)
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.usefixtures("restored")
def test_member_shortens_switch_interval_but_never_lengthens_it() -> None:
    sys.setswitchinterval(0.005)
    tuning.tune_process(replicated=True)
    assert sys.getswitchinterval() == pytest.approx(tuning.SWITCH_INTERVAL_S)
    sys.setswitchinterval(0.0001)
    shorter = sys.getswitchinterval()
    tuning.tune_process(replicated=True)
    assert sys.getswitchinterval() == shorter


@pytest.mark.usefixtures("restored")
def test_collector_switched_off_stays_off() -> None:
    gc.set_threshold(0, 10, 10)
    tuning.tune_process(replicated=False)
    assert gc.get_threshold()[0] == 0


def test_only_big_trees_are_frozen() -> None:
    before = gc.get_freeze_count()
    tuning.freeze_big_tree(tuning.GC_FREEZE_NODES - 1)
    assert gc.get_freeze_count() == before
    try:
        tuning.freeze_big_tree(tuning.GC_FREEZE_NODES)
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
