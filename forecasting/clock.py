"""What a scheduled run forecasts as of: its scheduled time, or that time on a replay clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from forecasting.config import ReplayConfig
from forecasting.errors import ConfigError


@dataclass(frozen=True)
class ScheduledAsOf:
    """A scheduled run's as-of.

    Attributes:
        as_of: The time the run forecasts as of, in the data's time-zone convention.
        cycle: 1 on the first pass through the data; n after the replay wrapped n - 1 times.
        note: What a person should know, e.g. that the replay wrapped; empty otherwise.
    """

    as_of: pd.Timestamp
    cycle: int = 1
    note: str = ""

    def pipeline_name(self, name: str) -> str:
        """Where this cycle publishes: `name`, then `name-cycle-2`, ... after wrapping."""
        return name if self.cycle == 1 else f"{name}-cycle-{self.cycle}"


def scheduled_as_of(
    scheduled: datetime,
    first: pd.Timestamp,
    last: pd.Timestamp,
    replay: ReplayConfig | None = None,
) -> ScheduledAsOf:
    """Maps a scheduled start time to the as-of its run forecasts from.

    Without `replay`, the as-of is the scheduled time itself (naive data are read as UTC).
    With it, the as-of is `replay.start + (scheduled - replay.anchor)`; past `last` it wraps
    back to `replay.start` and counts the cycle.

    Args:
        scheduled: The run's expected start time, time-zone aware.
        first, last: The data's first and last timestamps.

    Raises:
        ConfigError: The replay start lies outside the data, or is naive against offsets.
    """
    aware = first.tzinfo is not None
    moment = pd.Timestamp(scheduled).floor("s")  # an ad-hoc run is due at "now", to the µs
    if replay is None:
        return ScheduledAsOf(moment if aware else moment.tz_convert(UTC).tz_localize(None))
    start = pd.Timestamp(replay.start)
    if (start.tzinfo is not None) != aware or not first <= start < last:
        raise ConfigError(
            f"replay.start ({start.isoformat()}) must lie within the data, from "
            f"{first.isoformat()} to before {last.isoformat()}, written the data's way "
            "(with an offset only when the data carry one)."
        )
    elapsed = moment - pd.Timestamp(replay.anchor)
    span = last - start
    cycle, offset = divmod(elapsed, span) if elapsed >= pd.Timedelta(0) else (0, elapsed)
    as_of = start + offset
    note = ""
    if cycle:
        note = (
            f"The replay reached the end of the data ({last.isoformat()}) and wrapped to "
            f"{start.isoformat()} {cycle} time(s); this cycle publishes separately."
        )
    return ScheduledAsOf(as_of, int(cycle) + 1, note)


def backfill_times(start: str, end: str, every: str) -> pd.DatetimeIndex:
    """The as-of times a backfill replays: from `start` to `end` inclusive, oldest first.

    Args:
        start, end: Timestamps such as '2018-06-01 00:00'.
        every: The step between them, a positive pandas Timedelta such as '24h' or '1D'.

    Raises:
        ConfigError: A value does not parse, or together they give no time.
    """
    try:
        step = pd.Timedelta(every)
        if step > pd.Timedelta(0):  # checked first: pandas divides by a zero step
            times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=step)
            if len(times) > 0:
                return times
    except (ValueError, TypeError):  # TypeError: one time has an offset, the other none
        pass
    raise ConfigError(
        f"--start {start!r}, --end {end!r} and --every {every!r} give no as-of times: use "
        "timestamps such as '2018-06-01 00:00' (both with an offset or neither) with START <= "
        "END and a positive step such as 24h."
    )
