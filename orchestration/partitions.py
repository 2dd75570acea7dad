"""Windows as Dagster time partitions: one partition per monitoring window of the spec.

The windows are epoch-aligned (docs/architecture.md §3.3); a cron schedule that ticks on the same boundaries
exists when the window divides an hour (minutes), a day (hours), or is a day or an epoch week
(which starts on a Thursday). Other window lengths run unpartitioned. Partitions start at
`$DRIFTMART_PARTITIONS_START` (default 2024-01-01) and include the current, still open window.
"""

import os
from datetime import datetime

import dagster as dg

from ml.spec import ModelSpec

DEFAULT_PARTITIONS_START = "2024-01-01"
DAY, WEEK = 86_400, 7 * 86_400


def window_partitions(spec: ModelSpec) -> dg.TimeWindowPartitionsDefinition | None:
    seconds = spec.window_seconds
    if seconds < 3600 and seconds % 60 == 0 and 3600 % seconds == 0:
        cron, fmt = f"*/{seconds // 60} * * * *", "%Y-%m-%d-%H:%M"
    elif seconds < DAY and seconds % 3600 == 0 and DAY % seconds == 0:
        cron, fmt = f"0 */{seconds // 3600} * * *", "%Y-%m-%d-%H:%M"
    elif seconds == DAY:
        cron, fmt = "0 0 * * *", "%Y-%m-%d"
    elif seconds == WEEK:
        cron, fmt = "0 0 * * 4", "%Y-%m-%d"  # 1970-01-01, the epoch, was a Thursday
    else:
        return None
    return dg.TimeWindowPartitionsDefinition(
        start=datetime.fromisoformat(os.environ.get("DRIFTMART_PARTITIONS_START", DEFAULT_PARTITIONS_START)),
        cron_schedule=cron,
        fmt=fmt,
        timezone="UTC",
        end_offset=1,
    )


def current_partition_key(partitions: dg.PartitionsDefinition | None) -> str | None:
    """The partition of the window open now: a routine run recounts it (and, by the incremental
    models' own watermark, every window that received rows)."""
    return partitions.get_last_partition_key() if partitions is not None else None
