"""The demo's terminal view: a fixed-width table of the latest result of every check.

A pure function of the results and the clock, so the CLI can redraw it every
second and tests can read it as text. A drift row shows its method and score
(``psi 0.41``) and p-value rather than its raw measurements. Results of feature
stores (a dozen per feature view) are folded into one line per view under the
table: materialization lag, the last online-store probe, parity, and the batch
source's checks.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from osemn._drift_config import DRIFT_SHARE
from osemn.checks._featurestore_parity import parity_name
from osemn.checks.featurestore import MATERIALIZATION, PROBE_CHECK
from osemn.results import CheckKind, CheckResult, Measurement, Status

__all__ = ["render_status"]

_ANSI = {
    Status.PASS: "\x1b[32m",
    Status.FAIL: "\x1b[31;1m",
    Status.ERROR: "\x1b[33;1m",
    Status.INSUFFICIENT_DATA: "\x1b[2m",
}
_BOLD, _RESET = "\x1b[1m", "\x1b[0m"
_KIND_ORDER = {
    CheckKind.FRESHNESS: 0,
    CheckKind.VOLUME: 1,
    CheckKind.SCHEMA_CHANGE: 2,
    CheckKind.SCHEMA: 3,
    CheckKind.DRIFT: 4,
}
# The status column is six wide; "insufficient_data" says the same in six letters.
_LABEL = {Status.INSUFFICIENT_DATA: "INSUFF"}
_WORD = {Status.INSUFFICIENT_DATA: "insufficient"}  # in the header, which must fit 80 columns
# Drift methods as the table names them; Jensen-Shannon's full name would crowd out the score.
_METHOD = {"jensen_shannon": "js"}
_GAP = "  "
# Fixed columns: status, rows, failed, age; the flexible ones share what is left.
_STATUS_W, _ROWS_W, _FAILED_W, _AGE_W = 6, 6, 6, 5


def render_status(
    results: Sequence[CheckResult],
    *,
    now: datetime,
    incident: str | None,
    width: int = 100,
    color: bool = False,
    slos: Mapping[str, Any] | None = None,
    feature_stores: Collection[str] = (),
) -> str:
    """The latest results as a table no wider than ``width``, under a header line.

    Args:
        results: the latest result of each check (any order; shown grouped by dataset).
        now: the current time, for the header and the age of each run.
        incident: what is going wrong right now, or None while the feed is healthy.
        width: the terminal width; every line fits in it from 80 columns up.
        color: mark statuses and the incident with ANSI colours.
        slos: the agent's ``slo_document()``: adds a line per SLO with its budget left,
            burn rates and alerts.
        feature_stores: names of feature-store sources; their results are shown one
            line per feature view instead of one row per check.
    """
    counts = {s: sum(r.status is s for r in results) for s in Status}
    summary = ", ".join(
        f"{counts[s]} {_WORD.get(s, s.value)}"
        for s in Status
        if counts[s] or s is not Status.INSUFFICIENT_DATA
    )
    clock = _utc(now).strftime("%H:%M:%S UTC")
    lines = [_fit(f"osemn demo · {clock} · {len(results)} checks: {summary}", width)]
    what = _fit(f"incident: {incident or 'none, all feeds healthy'}", width)
    lines.append(f"{_BOLD}{what}{_RESET}" if color and incident else what)

    features = [r for r in results if r.source in feature_stores]
    tables = [r for r in results if r.source not in feature_stores]
    ordered = sorted(
        tables,
        key=lambda r: (r.dataset, _KIND_ORDER.get(r.kind, 9), r.check == DRIFT_SHARE, r.check),
    )
    dataset_w = min(max([len("DATASET"), *(len(r.dataset) for r in tables)]), 24)
    fixed = dataset_w + _STATUS_W + _ROWS_W + _FAILED_W + _AGE_W + 6 * len(_GAP)
    flexible = max(width - fixed, 24)
    check_w = flexible // 2
    value_w = flexible - check_w

    def row(cells: Sequence[str], status: Status | None = None) -> str:
        dataset, check, state, rows, failed, value, age = cells
        state_cell = state.ljust(_STATUS_W)
        if color and status is not None:
            state_cell = f"{_ANSI[status]}{state_cell}{_RESET}"
        parts = [
            _fit(dataset, dataset_w).ljust(dataset_w),
            _fit(check, check_w).ljust(check_w),
            state_cell,
            rows.rjust(_ROWS_W),
            failed.rjust(_FAILED_W),
            _fit(value, value_w).ljust(value_w),
            age.rjust(_AGE_W),
        ]
        return _GAP.join(parts).rstrip()

    lines.append(row(("DATASET", "CHECK", "STATUS", "ROWS", "FAILED", "VALUE", "AGE")))
    for r in ordered:
        age = (_utc(now) - _utc(r.finished_at)).total_seconds()
        lines.append(
            row(
                (
                    r.dataset,
                    r.check,
                    _LABEL.get(r.status, r.status.name),
                    _count(r.rows),
                    _count(r.failed_rows),
                    _value(r),
                    _duration(max(age, 0.0)),
                ),
                r.status,
            )
        )
    if not results:
        lines.append("(no check has finished yet)")
    if features:
        lines.append("")
        lines.extend(_feature_lines(features, width=width, color=color))
    if slos and slos.get("slos"):
        lines.append("")
        lines.extend(_slo_lines(slos, width=width, color=color))
    return "\n".join(lines)


def _slo_lines(doc: Mapping[str, Any], *, width: int, color: bool) -> list[str]:
    """``SLO  budget left  burn 5m/1h/6h  alerts``: one line per SLO."""
    firing: dict[str, list[str]] = {}
    for alert in doc.get("alerts", []):
        labels = alert["labels"]
        what = labels.get("burnrate_tier") or labels.get("alertname", "")
        severity = labels.get("severity", "")
        firing.setdefault(labels.get("slo", ""), []).append(
            f"{severity} {what}" + (" (pending)" if alert.get("state") == "pending" else "")
        )
    name_w = max(len("SLO"), *(len(s["slo"]) for s in doc["slos"]))
    out = [_cut(f"{'SLO'.ljust(name_w)}  BUDGET LEFT  BURN 5m / 1h / 6h     ALERTS", width)]
    for s in doc["slos"]:
        burn = s.get("burn_rates", {})
        rates = " / ".join(_rate(burn.get(w)) for w in ("5m", "1h", "6h"))
        alerts = ", ".join(firing.get(s["slo"], [])) or "-"
        line = _cut(
            f"{s['slo'].ljust(name_w)}  {_percent(s.get('error_budget_remaining')).rjust(11)}"
            f"  {rates.ljust(20)}  {alerts}",
            width,
        )
        if color and firing.get(s["slo"]):
            line = f"{_ANSI[Status.FAIL]}{line}{_RESET}"
        out.append(line)
    return out


_FEATURE_HEADER = ("FEATURE VIEW", "MATERIALIZATION", "ONLINE", "PARITY", "BATCH SOURCE")
_FEATURE_W = (17, 11, 14)  # then the batch source; the view's column fits the longest name
_SEVERITY = {Status.PASS: 0, Status.INSUFFICIENT_DATA: 1, Status.FAIL: 2, Status.ERROR: 3}
_PROBE = {Status.PASS: "up", Status.FAIL: "down", Status.INSUFFICIENT_DATA: "skipped"}
_PARITY = parity_name("", 0.0).partition("(")[0]  # ":online_parity"
_Cell = tuple[str, Status | None]


def _feature_lines(results: Sequence[CheckResult], *, width: int, color: bool) -> list[str]:
    """``view  FAIL lag 41s  up 3ms  PASS skew 0%  PASS newest 2s``: one line per view.

    Each cell has the worst status of its checks: materialization freshness,
    online probes (``up``, ``down``, ``skipped``), parity per feature, and the
    batch source's freshness, completeness and dtypes.
    """
    views: dict[str, dict[str, list[CheckResult]]] = {}
    for r in results:
        parts = views.setdefault(r.dataset, {p: [] for p in _PARTS})
        parts[_part(r)].append(r)
    widths = (max(len(_FEATURE_HEADER[0]), *(len(v) for v in views)), *_FEATURE_W, 0)
    out = [_cells_line([(h, None) for h in _FEATURE_HEADER], widths, width=width, color=False)]
    for view, parts in sorted(views.items()):
        materialized, probes, parity, batch = (parts[p] for p in _PARTS)
        lags = _values(materialized, "materialization_lag_seconds")
        latency = _values(probes, "request_seconds")
        skews = _values(parity, "parity_mismatch_ratio")
        ages = _values(batch, "freshness_seconds")
        online = _feature_cell(probes, f"{max(latency) * 1000:.1f}ms" if latency else "")
        if online[1] in _PROBE:
            online = (online[0].replace(_label(online[1]), _PROBE[online[1]], 1), online[1])
        cells = [
            (view, None),
            _feature_cell(materialized, f"lag {_duration(max(lags))}" if lags else ""),
            online,
            _feature_cell(parity, f"skew {max(skews):.0%}" if skews else ""),
            _feature_cell(batch, f"newest {_duration(min(ages))}" if ages else ""),
        ]
        out.append(_cells_line(cells, widths, width=width, color=color))
    return out


def _cells_line(cells: Sequence[_Cell], widths: Sequence[int], *, width: int, color: bool) -> str:
    """Cells padded to their widths and cut to ``width``; each status word coloured."""
    line = _cut(
        _GAP.join(t.ljust(w) for (t, _), w in zip(cells, widths, strict=True)).rstrip(), width
    )
    if not color:
        return line
    marks, at = [], 0
    for (text, status), w in zip(cells, widths, strict=True):
        word = text.split(" ")[0]  # the status word opens the cell
        if status is not None and at + len(word) <= len(line):
            marks.append((at, at + len(word), _ANSI[status]))
        at += w + len(_GAP)
    for start, end, code in reversed(marks):
        line = f"{line[:start]}{code}{line[start:end]}{_RESET}{line[end:]}"
    return line


_PARTS = ("materialization", "probe", "parity", "batch")


def _part(result: CheckResult) -> str:
    """Which cell of its feature view's line ``result`` goes to (one of ``_PARTS``)."""
    if result.check.startswith(f"{MATERIALIZATION}:"):
        return "materialization"
    if result.check == PROBE_CHECK:
        return "probe"
    return "parity" if _PARITY in result.check else "batch"


def _values(results: Sequence[CheckResult], name: str) -> list[float]:
    return [m.value for r in results for m in r.measurements if m.name == name]


def _feature_cell(results: Sequence[CheckResult], value: str) -> _Cell:
    """The worst status of ``results`` and a value (``FAIL lag 41s``); ``-`` when none ran."""
    if not results:
        return "-", None
    worst = max((r.status for r in results), key=_SEVERITY.__getitem__)
    return f"{_label(worst)} {value}".rstrip(), worst


def _label(status: Status | None) -> str:
    return "-" if status is None else _LABEL.get(status, status.name)


def _cut(text: str, width: int) -> str:
    """``text`` cut to ``width``, keeping its column padding (unlike ``_fit``)."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _rate(value: object) -> str:
    if not isinstance(value, int | float) or value != value:
        return "-"
    return f"{value:.1f}x"


def _percent(value: object) -> str:
    if not isinstance(value, int | float) or value != value:
        return "-"
    return f"{value:.1%}"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fit(text: str, width: int) -> str:
    return _cut(" ".join(text.split()), width)  # one line, whatever an error message holds


def _count(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.1f}M" if value >= 10_000_000 else str(value)


def _value(result: CheckResult) -> str:
    if result.status is Status.ERROR and result.error:
        return result.error
    if result.status is Status.INSUFFICIENT_DATA:
        return "insufficient data"
    if result.kind is CheckKind.DRIFT:
        return _drift(result)
    # Unix timestamps mean nothing at a glance; the ages derived from them do.
    shown = (m for m in result.measurements if not m.name.endswith("_timestamp_seconds"))
    return ", ".join(_measurement(m) for m in shown)


def _drift(result: CheckResult) -> str:
    """``psi 0.41 p=3e-05`` plus any side signal, or the dataset's drifted share."""
    share = result.measurement("drift_share")
    if share is not None:
        return f"drift share {share:.0%}"
    found = {m.name: m for m in result.measurements}
    shown = []
    if "drift_score" in found:
        score = found["drift_score"]
        method = dict(score.labels).get("method", "score")
        shown.append(f"{_METHOD.get(method, method)} {score.value:.3g}")
    if "drift_pvalue" in found:
        shown.append(f"p={found['drift_pvalue'].value:.2g}")
    signals = (result.details or {}).get("signals", ())
    parts = [" ".join(shown), *(str(s) for s in signals if s != "distribution")]
    return ", ".join(part for part in parts if part)


def _measurement(m: Measurement) -> str:
    name = m.name
    labels = ",".join(v for _, v in m.labels)
    if name.endswith("_seconds"):
        shown = _duration(m.value)
        name = name.removesuffix("_seconds")
    elif name.endswith("_ratio"):
        shown = f"{m.value:.1%}"
        name = name.removesuffix("_ratio")
    elif float(m.value).is_integer():
        shown = f"{int(m.value)}"
    else:
        shown = f"{m.value:.4g}"
    return f"{name}[{labels}] {shown}" if labels else f"{name} {shown}"


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing measured yet
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.1f}d"
