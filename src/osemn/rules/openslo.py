"""OpenSLO v1: SLOs read from and written as OpenSLO documents.

An osemn SLO is an OpenSLO ``SLO`` whose indicator is a ratio of osemn's own
events (see docs/rules.md)::

    metadata.name                        name
    metadata.labels                      labels (a value or a one-item list)
    metadata.annotations[osemn.dev/...]  runbook-url, dashboard-url, absent-after, for
    spec.description                     description
    spec.service                         the dataset (informative; written, not read)
    spec.indicator (or indicatorRef to a kind: SLI document of the same file)
      spec.ratioMetric.good / .total     both metricSource {type: osemn, spec: {...}}
        metricSource.spec                dataset | model | source (+feature_view), sli, columns
    spec.timeWindow[0]                   window: duration, isRolling: true
    spec.budgetingMethod                 Occurrences; Timeslices for freshness and volume
    spec.objectives[0].target            objective (or targetPercent)

Time-sliced SLIs count one event per check, so osemn's time slice is the
dataset's check interval: ``timeSliceWindow`` is written from it and not read.
Other OpenSLO kinds (Service, DataSource, AlertPolicy, ...) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError

from osemn._slo_config import TIME_SLICED_SLIS, SLOConfig
from osemn._units import format_duration
from osemn.errors import ConfigError, RuleError

__all__ = ["API_VERSION", "SOURCE_TYPE", "export_openslo", "load_openslo", "parse_openslo"]

API_VERSION = "openslo/v1"
SOURCE_TYPE = "osemn"

_SKIPPED_KINDS = frozenset(
    {"Service", "DataSource", "AlertPolicy", "AlertCondition", "AlertNotificationTarget"}
)
_ANNOTATIONS = {
    "osemn.dev/runbook-url": "runbook_url",
    "osemn.dev/dashboard-url": "dashboard_url",
    "osemn.dev/absent-after": "absent_after",
    "osemn.dev/for": "for",
}
_SOURCE_KEYS = ("dataset", "model", "source", "feature_view", "sli", "columns")
_COUNTED = {"Timeslices": "one event per check (a time slice)", "Occurrences": "events"}
# OpenSLO's duration shorthand; a month, quarter and year are 30, 90 and 365 days.
_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "Q": 90 * 86400}
_UNIT["Y"] = 365 * 86400

Loc = tuple[str, ...]


# --- reading -------------------------------------------------------------------------


def load_openslo(path: str | Path) -> list[SLOConfig]:
    """Read the SLOs of an OpenSLO v1 file (one or several YAML documents).

    Raises:
        ConfigError: naming the file, line and key, what is wrong and what would be valid.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read OpenSLO file: {exc.strerror}; check the `openslo:` path", path=str(p)
        ) from None
    return parse_openslo(text, path=str(p))


def parse_openslo(text: str, *, path: str = "openslo.yaml") -> list[SLOConfig]:
    """Parse OpenSLO v1 YAML text; see :func:`load_openslo`."""
    try:
        nodes = [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", path=path, line=line) from None
    docs = [_Doc(node, path) for node in nodes]
    indicators: dict[str, tuple[_Doc, Loc]] = {}
    slos: list[_Doc] = []
    for doc in docs:
        kind = doc.header()
        if kind == "SLI":
            indicators[doc.text(("metadata", "name"))] = (doc, ())
        elif kind == "SLO":
            slos.append(doc)
    if not slos:
        raise ConfigError(
            "holds no OpenSLO SLO document; write `apiVersion: openslo/v1` and `kind: SLO`",
            path=path,
        )
    return [_slo(doc, indicators) for doc in slos]


class _Doc:
    """One YAML document as Python values, with the line of every key for errors."""

    def __init__(self, node: yaml.Node, path: str) -> None:
        self.path = path
        self.lines: dict[Loc, int] = {}
        self._constructor = yaml.constructor.SafeConstructor()
        self.value = self._python(node, ())

    def _python(self, node: yaml.Node, loc: Loc) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                # A key's errors point at the key, not at its (maybe next-line) value.
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                if key in out:
                    self.fail((*loc, key), "duplicate key; keep one")
                out[key] = self._python(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._python(item, (*loc, str(i))) for i, item in enumerate(node.value)]
        return self._constructor.construct_object(node)

    def fail(self, loc: Loc, message: str) -> NoReturn:
        line = next(
            (self.lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in self.lines), None
        )
        raise ConfigError(message, path=self.path, line=line, key=".".join(loc) or None)

    def get(self, loc: Loc, default: Any = None) -> Any:
        value: Any = self.value
        for i, part in enumerate(loc):
            if isinstance(value, Mapping):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit():
                value = value[int(part)] if int(part) < len(value) else None
            else:
                self.fail(loc[:i], "must be a mapping")
            if value is None:
                return default
        return value

    def need(self, loc: Loc, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.get(loc)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if value is None:
            self.fail(loc, f"required key is missing; write {what}")
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
            self.fail(loc, f"must be {what} (got {value!r})")
        return value

    def text(self, loc: Loc) -> str:
        return str(self.need(loc, str, "a string"))

    def header(self) -> str:
        if not isinstance(self.value, dict):
            self.fail(
                (), "an OpenSLO document must be a mapping with apiVersion, kind, metadata and spec"
            )
        version = self.get(("apiVersion",))
        if version != API_VERSION:
            self.fail(
                ("apiVersion",),
                f"{version!r} is not supported; osemn reads apiVersion: {API_VERSION}",
            )
        kind = self.text(("kind",))
        if kind not in ("SLO", "SLI") and kind not in _SKIPPED_KINDS:
            self.fail(
                ("kind",),
                f"unknown kind {kind!r}; OpenSLO v1 kinds are SLO, SLI, "
                + ", ".join(sorted(_SKIPPED_KINDS)),
            )
        return kind


def _slo(doc: _Doc, indicators: Mapping[str, tuple[_Doc, Loc]]) -> SLOConfig:
    fields: dict[str, Any] = {"name": doc.text(("metadata", "name"))}
    where: dict[str, Loc] = {"name": ("metadata", "name")}
    fields["labels"] = _labels(doc)
    where["labels"] = ("metadata", "labels")
    for key, value in (doc.get(("metadata", "annotations")) or {}).items():
        if key.startswith("osemn.dev/"):
            if key not in _ANNOTATIONS:
                doc.fail(
                    ("metadata", "annotations", key),
                    f"unknown osemn annotation; valid ones: {', '.join(_ANNOTATIONS)}",
                )
            fields[_ANNOTATIONS[key]] = value
            where[_ANNOTATIONS[key]] = ("metadata", "annotations", key)
    if doc.get(("spec", "description")) is not None:
        fields["description"] = doc.text(("spec", "description"))
    source_doc, source_loc, source = _indicator(doc, indicators)
    fields.update(source)
    for key in _SOURCE_KEYS:
        where[key] = (*source_loc, key)
    fields["window"] = _window(doc)
    where["window"] = ("spec", "timeWindow", "0", "duration")
    fields["objective"], where["objective"] = _objective(doc)
    try:
        slo = SLOConfig.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        if field in where:
            (doc if field not in _SOURCE_KEYS else source_doc).fail(where[field], message)
        source_doc.fail(source_loc, message)
    method = doc.need(("spec", "budgetingMethod"), str, "Occurrences or Timeslices")
    expected = "Timeslices" if slo.sli in TIME_SLICED_SLIS else "Occurrences"
    if method != expected:
        doc.fail(
            ("spec", "budgetingMethod"),
            f"osemn counts sli {slo.sli} as {_COUNTED[expected]}; "
            f"write budgetingMethod: {expected}",
        )
    return slo


def _labels(doc: _Doc) -> dict[str, str]:
    labels = doc.get(("metadata", "labels")) or {}
    if not isinstance(labels, dict):
        doc.fail(("metadata", "labels"), "must be a mapping of label names to values")
    out = {}
    for key, value in labels.items():
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            doc.fail(
                ("metadata", "labels", key),
                "an osemn label has one string value; write e.g. team: data",
            )
        out[str(key)] = value
    return out


def _indicator(
    doc: _Doc, indicators: Mapping[str, tuple[_Doc, Loc]]
) -> tuple[_Doc, Loc, dict[str, Any]]:
    """The SLI's source: the document holding it, where, and the SLOConfig fields it gives."""
    ref = doc.get(("spec", "indicatorRef"))
    if ref is not None:
        if doc.get(("spec", "indicator")) is not None:
            doc.fail(("spec", "indicatorRef"), "give either indicator or indicatorRef, not both")
        if ref not in indicators:
            doc.fail(
                ("spec", "indicatorRef"),
                f"no kind: SLI document named {ref!r} in this file; known: "
                f"{', '.join(map(repr, indicators)) or 'none'}",
            )
        sli_doc, base = indicators[ref]
    else:
        sli_doc, base = doc, ("spec", "indicator")
        sli_doc.need(base, dict, "an indicator (metadata and spec) or an indicatorRef")
    ratio: Loc = (*base, "spec", "ratioMetric")
    if sli_doc.get(ratio) is None:
        sli_doc.fail(
            (*base, "spec"),
            "osemn SLIs are ratios of events; write ratioMetric with good and total "
            f"metricSource of type {SOURCE_TYPE}",
        )
    specs = []
    for part in ("good", "total"):
        source: Loc = (*ratio, part, "metricSource")
        kind = sli_doc.need((*source, "type"), str, f"type: {SOURCE_TYPE}")
        if kind != SOURCE_TYPE:
            sli_doc.fail(
                (*source, "type"),
                f"osemn reads only its own events; write type: {SOURCE_TYPE} (got {kind!r})",
            )
        spec = sli_doc.need(
            (*source, "spec"), dict, "a mapping with dataset, sli and (for completeness) columns"
        )
        for key in spec:
            if key not in _SOURCE_KEYS:
                sli_doc.fail(
                    (*source, "spec", key), f"unknown key; valid keys: {', '.join(_SOURCE_KEYS)}"
                )
        specs.append((source, spec))
    (good_loc, good), (total_loc, total) = specs
    if good != total:
        sli_doc.fail(
            (*total_loc, "spec"),
            "good and total must count the same osemn SLI; make both specs equal",
        )
    fields = dict(good)
    columns = fields.get("columns")
    if isinstance(columns, str):
        fields["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    return sli_doc, (*good_loc, "spec"), fields


def _window(doc: _Doc) -> timedelta:
    windows = doc.need(
        ("spec", "timeWindow"),
        list,
        "a list with one window, e.g. [{duration: 28d, isRolling: true}]",
    )
    if len(windows) != 1:
        doc.fail(
            ("spec", "timeWindow"), f"osemn takes exactly one time window (got {len(windows)})"
        )
    loc: Loc = ("spec", "timeWindow", "0")
    if doc.get((*loc, "isRolling")) is not True:
        doc.fail(
            (*loc, "isRolling"),
            "osemn SLO windows roll; write isRolling: true (calendar windows are not supported)",
        )
    duration = str(doc.need((*loc, "duration"), str, "an OpenSLO duration such as 28d"))
    match = _SHORTHAND.match(duration)
    if match is None:
        doc.fail(
            (*loc, "duration"),
            f"{duration!r} is not an OpenSLO duration; write a number and one of "
            "m, h, d, w, M, Q, Y, e.g. 28d",
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


def _objective(doc: _Doc) -> tuple[float, Loc]:
    objectives = doc.need(
        ("spec", "objectives"), list, "a list with one objective, e.g. [{target: 0.995}]"
    )
    if len(objectives) != 1:
        doc.fail(
            ("spec", "objectives"),
            f"osemn takes one objective per SLO (got {len(objectives)}); "
            "write one SLO per objective",
        )
    loc: Loc = ("spec", "objectives", "0")
    if doc.get((*loc, "targetPercent")) is not None:
        percent = doc.need((*loc, "targetPercent"), (int, float), "a percentage such as 99.5")
        return float(percent) / 100, (*loc, "targetPercent")
    target = doc.need(
        (*loc, "target"), (int, float), "a ratio such as 0.995 (or targetPercent: 99.5)"
    )
    return float(target), (*loc, "target")


# --- writing -------------------------------------------------------------------------


def export_openslo(
    slos: Sequence[SLOConfig], *, check_intervals: Mapping[str, timedelta] | None = None
) -> str:
    """The SLOs as OpenSLO v1 YAML documents, one per SLO, that :func:`load_openslo` reads back.

    ``check_intervals`` (SLO name -> how often its dataset is checked) gives the
    ``timeSliceWindow`` of time-sliced SLIs; without it the key is left out.

    Raises:
        RuleError: when a window cannot be written as an OpenSLO duration.
    """
    docs = [_document(slo, (check_intervals or {}).get(slo.name)) for slo in slos]
    # Non-ASCII is escaped: PyYAML would write a NEL (\x85) raw and read it back as a space.
    return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)


def _document(slo: SLOConfig, interval: timedelta | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": slo.name}
    if slo.labels:
        metadata["labels"] = dict(slo.labels)
    notes = {
        "osemn.dev/runbook-url": slo.runbook_url,
        "osemn.dev/dashboard-url": slo.dashboard_url,
        "osemn.dev/absent-after": slo.absent_after and format_duration(slo.absent_after),
        "osemn.dev/for": slo.for_ and format_duration(slo.for_),
    }
    if any(notes.values()):
        metadata["annotations"] = {k: v for k, v in notes.items() if v}
    subject = {
        "dataset": slo.dataset,
        "model": slo.model,
        "source": slo.source,
        "feature_view": slo.feature_view,
    }
    source: dict[str, Any] = {k: v for k, v in subject.items() if v}
    source["sli"] = slo.sli
    if slo.columns:
        joined = ",".join(slo.columns)
        # OpenSLO's reference reader keeps spec values as strings: join them when it can.
        source["columns"] = list(slo.columns) if any("," in c for c in slo.columns) else joined
    spec: dict[str, Any] = {}
    if slo.description:
        spec["description"] = slo.description
    spec["service"] = slo.subject
    spec["indicator"] = {
        "metadata": {"name": f"{slo.name}-sli"},
        "spec": {
            "ratioMetric": {
                "counter": True,
                "good": {"metricSource": {"type": SOURCE_TYPE, "spec": dict(source)}},
                "total": {"metricSource": {"type": SOURCE_TYPE, "spec": dict(source)}},
            }
        },
    }
    spec["timeWindow"] = [{"duration": _shorthand(slo.window, slo.name), "isRolling": True}]
    objective: dict[str, Any] = {"target": slo.objective}
    if slo.sli in TIME_SLICED_SLIS:
        spec["budgetingMethod"] = "Timeslices"
        objective["timeSliceTarget"] = 1  # a slice holds one check: good or bad
        if interval is not None:
            minutes = max(1, -(-int(interval.total_seconds()) // 60))
            objective["timeSliceWindow"] = f"{minutes}m"
    else:
        spec["budgetingMethod"] = "Occurrences"
    spec["objectives"] = [objective]
    return {"apiVersion": API_VERSION, "kind": "SLO", "metadata": metadata, "spec": spec}


def _shorthand(window: timedelta, name: str) -> str:
    seconds = window.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds % _UNIT[unit] == 0:
            return f"{int(seconds // _UNIT[unit])}{unit}"
    raise RuleError(
        f"SLO {name!r}: window {format_duration(window)} is not a whole number of minutes, "
        "which OpenSLO durations need; round the window"
    )
