"""Pure analysis of watch histories and client reports (unit-tested in test_suite.py)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

History = list  # [(t_ms, {name: summary})]


def state_at(history: History, t_ms: int) -> dict:
    """The state as of t_ms (the last snapshot at or before it; {} before the first)."""
    cur: dict = {}
    for t, s in history:
        if t > t_ms:
            break
        cur = s
    return cur


def pods_ready(state: dict, want: int | None = None) -> bool:
    live = [p for p in state.values() if not p.get("deleting")]
    ready = [p for p in live if p.get("ready")]
    if want is None:
        return bool(live) and len(ready) == len(live)
    return len(ready) >= want and len(live) == want


def first_ready_after_down(history: History, t0_ms: int, want: int = 1) -> int | None:
    """First instant after t0 at which `want` pods are ready, having been observed
    not ready (or absent, or replaced: a new uid) at some point after t0."""
    before = state_at(history, t0_ms)
    uids_before = {p.get("uid") for p in before.values()}
    went_down = False
    for t, s in history:
        if t < t0_ms:
            continue
        if not pods_ready(s, want):
            went_down = True
            continue
        replaced = {p.get("uid") for p in s.values()} != uids_before
        if went_down or replaced:
            return t
    return None


def first_stable_ready(history: History, from_ms: int, want: int, end_ms: int,
                       hold_ms: int = 2000) -> int | None:
    """First instant >= from_ms at which `want` pods are ready and stay so for hold_ms
    (or until end_ms, the end of observation, if that comes first but after it)."""
    points = [from_ms] + [t for t, _ in history if t > from_ms]
    for i, t in enumerate(points):
        if not pods_ready(state_at(history, t), want):
            continue
        # stays ready until t + hold_ms?
        ok = True
        for t2, s2 in history:
            if t < t2 <= t + hold_ms and not pods_ready(s2, want):
                ok = False
                break
        if ok and (t + hold_ms <= end_ms or all(tt <= t for tt, _ in history)):
            return t
    return None


def min_ready(history: History, t_from: int, t_to: int) -> int:
    vals = []
    base = state_at(history, t_from)
    vals.append(sum(1 for p in base.values() if p.get("ready") and not p.get("deleting")))
    for t, s in history:
        if t_from <= t <= t_to:
            vals.append(sum(1 for p in s.values() if p.get("ready") and not p.get("deleting")))
    return min(vals) if vals else 0


def restart_delta(before: dict, after: dict) -> tuple[int, int]:
    """(container restarts, pods replaced) between two {name: summary} maps."""
    by_uid = {p["uid"]: p for p in before.values()}
    restarts = 0
    replaced = 0
    for p in after.values():
        old = by_uid.get(p["uid"])
        if old is None:
            restarts += p.get("restarts", 0)
        else:
            restarts += max(0, p.get("restarts", 0) - old.get("restarts", 0))
    after_uids = {p["uid"] for p in after.values()}
    replaced = sum(1 for u in by_uid if u not in after_uids)
    return restarts, replaced


def parse_time_ms(s: str | None) -> int | None:
    """RFC 3339 (metav1.Time / MicroTime) -> unix ms."""
    if not s:
        return None
    s = s.strip().replace("Z", "+00:00")
    # Python 3.11's fromisoformat handles fractional seconds of any length up to 6.
    if "." in s:
        head, rest = s.split(".", 1)
        frac = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(frac):]
        s = f"{head}.{(frac + '000000')[:6]}{tz}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def event_time_ms(ev: dict) -> int | None:
    """An events.k8s.io/v1 Event's time: series.lastObservedTime, eventTime, or the
    deprecated timestamps."""
    for key in (("series", "lastObservedTime"), ("eventTime",), ("deprecatedLastTimestamp",),
                ("deprecatedFirstTimestamp",), ("metadata", "creationTimestamp")):
        v = ev
        for k in key:
            v = (v or {}).get(k) if isinstance(v, dict) else None
        t = parse_time_ms(v) if isinstance(v, str) else None
        if t:
            return t
    return None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (same definition as the load client's)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    rank = math.ceil(p / 100.0 * len(vals))
    return vals[min(max(rank, 1), len(vals)) - 1]


def secs(t_ms: int | None, t0_ms: int) -> float | None:
    return None if t_ms is None else round((t_ms - t0_ms) / 1000.0, 3)


def first_success_after_outage(outages: list[dict], t0_ms: int, fallback: float | None,
                               start_slack_ms: int = 10000) -> float | None:
    """Seconds from t0 to the end (first success) of the first client outage that
    ends after t0 and began before t0 + start_slack_ms: the first acknowledged call
    once the kill has taken effect. Calls that still succeed in the instant between
    the kill command and its effect do not count. Without such an outage (the
    service never failed) the client's own first-success-after-mark is used; an
    outage still open at the end of the run gives None."""
    for o in sorted(outages, key=lambda o: o.get("start_unix_ms", 0)):
        end = o.get("end_unix_ms")
        start = o.get("start_unix_ms", 0)
        if start >= t0_ms + start_slack_ms:
            break
        if end is None:
            return None
        if end > t0_ms:
            return round((end - t0_ms) / 1000.0, 3)
    return fallback
