"""The as-of of a scheduled run: its scheduled time, or that time on the replay clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from forecasting.clock import backfill_times, scheduled_as_of
from forecasting.config import ReplayConfig, build_config
from forecasting.errors import ConfigError

FIRST, LAST = pd.Timestamp("2016-07-01 00:00"), pd.Timestamp("2018-06-26 19:00")
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
REPLAY = ReplayConfig(anchor=ANCHOR, start=datetime(2017, 6, 1))


def test_without_replay_the_as_of_is_the_scheduled_time() -> None:
    berlin = timezone(timedelta(hours=1))
    due = datetime(2026, 11, 27, 7, 0, tzinfo=berlin)
    naive = scheduled_as_of(due, FIRST, LAST)
    assert naive.as_of == pd.Timestamp("2026-11-27 06:00") and naive.cycle == 1
    aware = scheduled_as_of(due, FIRST.tz_localize("UTC"), LAST.tz_localize("UTC"))
    assert aware.as_of == pd.Timestamp("2026-11-27 06:00", tz="UTC")


def test_an_ad_hoc_runs_as_of_is_whole_seconds() -> None:
    due = ANCHOR + timedelta(hours=2, seconds=5, microseconds=379071)
    assert scheduled_as_of(due, FIRST, LAST, REPLAY).as_of == pd.Timestamp("2017-06-01 02:00:05")


def test_each_hour_of_schedule_reveals_one_hour_of_data() -> None:
    first = scheduled_as_of(ANCHOR, FIRST, LAST, REPLAY)
    later = scheduled_as_of(ANCHOR + timedelta(hours=5), FIRST, LAST, REPLAY)
    assert first.as_of == pd.Timestamp("2017-06-01 00:00")
    assert later.as_of == pd.Timestamp("2017-06-01 05:00")
    assert first.note == later.note == "" and first.pipeline_name("etth1") == "etth1"


def test_the_replay_wraps_at_the_end_of_the_data_and_says_so() -> None:
    span = LAST - pd.Timestamp("2017-06-01")
    wrapped = scheduled_as_of(ANCHOR + span + timedelta(hours=3), FIRST, LAST, REPLAY)
    assert wrapped.as_of == pd.Timestamp("2017-06-01 03:00")
    assert wrapped.cycle == 2 and wrapped.pipeline_name("etth1") == "etth1-cycle-2"
    assert "wrapped to 2017-06-01T00:00:00 1 time(s)" in wrapped.note


def test_a_replay_start_outside_the_data_is_refused() -> None:
    outside = ReplayConfig(anchor=ANCHOR, start=datetime(2019, 1, 1))
    with pytest.raises(ConfigError, match="must lie within the data"):
        scheduled_as_of(ANCHOR, FIRST, LAST, outside)


def test_a_replay_anchor_needs_an_offset() -> None:
    with pytest.raises(ConfigError, match="replay.anchor: must carry an offset"):
        build_config({"replay": {"anchor": "2026-11-01T00:00:00", "start": "2017-06-01"}})


def test_a_backfill_replays_each_step_from_start_to_end_inclusive() -> None:
    times = backfill_times("2016-08-18 00:00", "2016-08-19 00:00", "12h")
    assert [time.isoformat() for time in times] == [
        "2016-08-18T00:00:00",
        "2016-08-18T12:00:00",
        "2016-08-19T00:00:00",
    ]


@pytest.mark.parametrize(
    ("start", "end", "every"),
    [
        ("2016-08-19", "2016-08-18", "24h"),
        ("2016-08-18", "2016-08-19", "-1h"),
        ("2016-08-18", "2016-08-19", "0h"),
        ("2016-08-18", "2016-08-19", "soon"),
        ("yesterday-ish", "2016-08-19", "24h"),
        ("2016-08-18 00:00+01:00", "2016-08-19 00:00", "24h"),
    ],
    ids=["reversed", "negative-step", "zero-step", "bad-step", "bad-start", "one-offset"],
)
def test_a_backfill_without_times_is_refused(start: str, end: str, every: str) -> None:
    with pytest.raises(ConfigError, match="give no as-of times"):
        backfill_times(start, end, every)
