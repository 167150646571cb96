"""osemn.yaml: pydantic models of the config contract, ``${ENV}`` interpolation,
and errors that point at ``file:line: key``.

The YAML is composed once to keep every node's line, so that a pydantic error
on ``datasets.orders.freshness.max_age`` can be reported where the user wrote it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from osemn._drift_config import CurrentWindow, DriftConfig, ReferenceWindow, SeasonalReference
from osemn._feast_config import FeastSourceConfig, FeatureViewOptions, ParityConfig, ProbeConfig
from osemn._lineage_config import LineageConfig, OpenLineageConfig
from osemn._model_config import LabelsConfig, ModelConfig, PredictionsConfig
from osemn._slo_config import (
    AlertingConfig,
    AlertmanagerReceiver,
    FileReceiver,
    PagerDutyReceiver,
    RouteConfig,
    SlackReceiver,
    SLOConfig,
    WebhookReceiver,
)
from osemn._units import parse_duration
from osemn.errors import ConfigError

__all__ = [
    "AgentConfig",
    "AlertingConfig",
    "Config",
    "DatasetConfig",
    "DriftConfig",
    "FailuresConfig",
    "FeastSourceConfig",
    "FreshnessConfig",
    "LabelsConfig",
    "LineageConfig",
    "ModelConfig",
    "OpenLineageConfig",
    "OpenSLOFile",
    "PredictionsConfig",
    "RouteConfig",
    "SLOConfig",
    "Schedule",
    "SourceConfig",
    "VolumeConfig",
    "load_config",
    "parse_config",
    "schedule_interval",
]

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

# Types a YAML scalar as YAML would (int, float, bool, null, timestamp, str).
_SCALARS = yaml.constructor.SafeConstructor()
_EVERY = re.compile(r"^\s*every\s+(\S+)\s*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Schedule:
    """When a dataset is checked: a fixed interval or a 5-field cron expression."""

    interval: timedelta | None = None
    cron: str | None = None

    @classmethod
    def parse(cls, value: object) -> Schedule:
        if isinstance(value, Schedule):
            return value
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a schedule; use 'every 5m' or a cron '*/5 * * * *'")
        match = _EVERY.match(value)
        if match:
            interval = parse_duration(match.group(1))
            if interval < timedelta(seconds=1):
                raise ValueError(f"{value!r} is shorter than 1s; use e.g. 'every 30s'")
            return cls(interval=interval)
        if len(value.split()) == 5:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a valid cron expression ({exc})") from None
            return cls(cron=value)
        raise ValueError(f"{value!r} is not a schedule; use 'every 5m' or a cron '*/5 * * * *'")

    def __str__(self) -> str:
        from osemn._units import format_duration

        return f"every {format_duration(self.interval)}" if self.interval else str(self.cron)


ModelConfig.model_rebuild(_types_namespace={"Schedule": Schedule})
LineageConfig.model_rebuild(_types_namespace={"Schedule": Schedule})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Model):
    """The ``agent:`` block."""

    state: str = "sqlite:///osemn-state.db"
    listen: str = "127.0.0.1:9108"
    retention: Duration = timedelta(days=30)
    shutdown_timeout: Duration = timedelta(seconds=30)
    jitter: Duration = timedelta(seconds=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port; use e.g. 127.0.0.1:9108 or 0.0.0.0:9108")
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        _check_url(value)
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _check_url(value: str) -> None:
    try:
        make_url(value)
    except ArgumentError:
        raise ValueError(
            "is not a SQLAlchemy URL; use e.g. postgresql+psycopg://user@host/db, "
            "duckdb:///path.duckdb or sqlite:///path.db"
        ) from None


class SourceConfig(_Model):
    """A warehouse reachable through a SQLAlchemy URL."""

    url: str
    max_concurrency: int = Field(default=2, ge=1, le=64)
    statement_timeout: Duration = timedelta(seconds=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        _check_url(value)
        return value

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden: the only form that may be shown or logged."""
        return make_url(self.url).render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return (
            f"SourceConfig(url={self.safe_url!r}, max_concurrency={self.max_concurrency}, "
            f"statement_timeout={self.statement_timeout!r})"
        )

    __str__ = __repr__


class FreshnessConfig(_Model):
    """``freshness: {max_age: 15m}``: the newest row must be younger than max_age."""

    max_age: Duration


class VolumeConfig(_Model):
    """``volume: {window: 1h, min_rows: 100, max_rows: ...}``: rows in the window."""

    window: Duration | None = None
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> VolumeConfig:
        if self.min_rows is None and self.max_rows is None:
            raise ValueError("needs min_rows, max_rows or both")
        if (
            self.min_rows is not None
            and self.max_rows is not None
            and self.min_rows > self.max_rows
        ):
            raise ValueError(f"min_rows {self.min_rows} is above max_rows {self.max_rows}")
        return self


class FailuresConfig(_Model):
    """How many failing rows to sample per failing check, and which columns to mask."""

    sample: int = Field(default=5, ge=0, le=1000)
    mask: tuple[str, ...] = ()


class DatasetConfig(_Model):
    """A table or view of a source and the checks to run on it."""

    source: str
    table: str
    timestamp: str | None = None
    schedule: Annotated[Schedule, BeforeValidator(Schedule.parse)] = Schedule(
        interval=timedelta(minutes=5)
    )
    schema_: str | None = Field(default=None, alias="schema")
    freshness: FreshnessConfig | None = None
    volume: VolumeConfig | None = None
    failures: FailuresConfig = FailuresConfig()
    lateness: Duration = timedelta(hours=1)
    incremental: bool = True
    drift: DriftConfig | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _needs_timestamp(self) -> DatasetConfig:
        if self.freshness is not None and self.timestamp is None:
            raise ValueError("freshness needs `timestamp:` (the event-time column)")
        if self.volume is not None and self.volume.window is not None and self.timestamp is None:
            raise ValueError("volume.window needs `timestamp:` (the event-time column)")
        if self.drift is not None and self.timestamp is None:
            raise ValueError("drift needs `timestamp:` (its windows are in event time)")
        return self

    @property
    def schema_ref(self) -> str | None:
        return self.schema_


def _source_kind(value: object) -> str:
    """A source is a Feast repo when it has ``feast:``, else a warehouse (``url:``)."""
    if isinstance(value, FeastSourceConfig) or (isinstance(value, dict) and "feast" in value):
        return "feast_source"
    return "warehouse_source"


AnySource = Annotated[
    Annotated[SourceConfig, Tag("warehouse_source")]
    | Annotated[FeastSourceConfig, Tag("feast_source")],
    Discriminator(_source_kind),
]


def _slo_entry_kind(value: object) -> str:
    if isinstance(value, OpenSLOFile) or (isinstance(value, dict) and "openslo" in value):
        return "openslo"
    return "slo"


class OpenSLOFile(_Model):
    """``slos: [{openslo: slos/orders.yaml}]``: SLOs written as OpenSLO v1 documents."""

    openslo: str


class Config(_Model):
    """The whole osemn.yaml. ``base_dir`` resolves relative schema, OpenSLO and Feast paths.

    OpenSLO entries of ``slos`` are read when the config is validated, so that
    everything after sees only ``SLOConfig`` (and errors name the file).
    ``sources`` holds warehouses and Feast repos side by side, told apart by
    their key (``url:`` or ``feast:``); ``warehouse_sources`` and
    ``feast_sources`` give each kind on its own.
    """

    version: Literal[1]
    agent: AgentConfig = AgentConfig()
    sources: dict[str, AnySource]
    datasets: dict[str, DatasetConfig] = {}
    models: dict[str, ModelConfig] = {}
    slos: tuple[
        Annotated[
            Annotated[SLOConfig, Tag("slo")] | Annotated[OpenSLOFile, Tag("openslo")],
            Discriminator(_slo_entry_kind),
        ],
        ...,
    ] = ()
    alerting: AlertingConfig = AlertingConfig()
    lineage: LineageConfig | None = None
    base_dir: Path = Field(default=Path("."), exclude=True)

    @property
    def warehouse_sources(self) -> dict[str, SourceConfig]:
        """The warehouse sources (``url:``), in config order."""
        return {n: s for n, s in self.sources.items() if isinstance(s, SourceConfig)}

    @property
    def feast_sources(self) -> dict[str, FeastSourceConfig]:
        """The Feast feature-store sources (``feast:``), in config order."""
        return {n: s for n, s in self.sources.items() if isinstance(s, FeastSourceConfig)}

    @property
    def warehouse_urls(self) -> dict[str, str]:
        """Each warehouse source's URL: OpenLineage names its datasets by it."""
        return {n: s.url for n, s in self.warehouse_sources.items()}

    @property
    def openlineage_namespace(self) -> str:
        """The namespace of osemn's OpenLineage jobs (``lineage.openlineage.namespace``)."""
        if self.lineage is not None and self.lineage.openlineage is not None:
            return self.lineage.openlineage.namespace
        return "osemn"

    @model_validator(mode="after")
    def _references(self) -> Config:
        warehouses = self.warehouse_sources
        for name, ds in self.datasets.items():
            if ds.source in self.feast_sources:
                raise _RefError(
                    ("datasets", name, "source"),
                    f"source {ds.source!r} is a Feast repo: its feature views are checked as "
                    "datasets without a `datasets:` entry; tune them under "
                    f"`sources.{ds.source}.feature_views`, or name a warehouse source: "
                    f"{', '.join(map(repr, warehouses)) or 'none'}",
                )
            if ds.source not in warehouses:
                raise _RefError(
                    ("datasets", name, "source"),
                    f"unknown source {ds.source!r}; defined sources: "
                    f"{', '.join(map(repr, warehouses)) or 'none'}",
                )
        for i, route in enumerate(self.alerting.routes):
            if route.receiver not in self.alerting.receivers:
                raise _RefError(
                    ("alerting", "routes", str(i), "receiver"),
                    f"unknown receiver {route.receiver!r}; defined receivers: "
                    f"{', '.join(map(repr, self.alerting.receivers)) or 'none'}",
                )
        if len(self.alerting.receivers) > 1 and not self.alerting.routes:
            raise _RefError(
                ("alerting", "routes"),
                "several receivers but no routes; add routes, e.g. "
                "[{match: {severity: page}, receiver: oncall}, {receiver: hooks}]",
            )
        for name, model in self.models.items():
            self._check_model(name, model)
        if self.lineage is not None:
            self._check_lineage(self.lineage)
        self._expand_openslo()
        seen: set[str] = set()
        for i, slo in enumerate(self.slo_list):
            loc = ("slos", str(i))
            if slo.name in seen:
                raise _RefError(
                    (*loc, "name"), f"duplicate SLO name {slo.name!r}; names must be unique"
                )
            seen.add(slo.name)
            if slo.dataset is not None and slo.dataset not in self.datasets:
                raise _RefError(
                    (*loc, "dataset"),
                    f"unknown dataset {slo.dataset!r}; defined datasets: "
                    f"{', '.join(map(repr, self.datasets)) or 'none'}",
                )
            if slo.model is not None:
                self._check_model_slo(slo, loc)
            elif slo.sli == "availability":
                self._check_availability_slo(slo, loc)
            elif slo.dataset is not None:
                self._check_slo_fits(slo, loc)
        return self

    def _check_slo_fits(self, slo: SLOConfig, loc: tuple[str, ...]) -> None:
        ds = self.datasets[slo.dataset or ""]
        needs = {"freshness": ds.freshness, "volume": ds.volume, "drift": ds.drift}
        if slo.sli in needs and needs[slo.sli] is None:
            raise _RefError(
                (*loc, "sli"),
                f"sli {slo.sli} needs a `{slo.sli}:` block on dataset {slo.dataset!r}",
            )
        if slo.sli in ("validity", "completeness") and ds.schema_ref is None:
            raise _RefError(
                (*loc, "sli"),
                f"sli {slo.sli} needs `schema:` on dataset {slo.dataset!r} (its rows are "
                "counted by the schema checks)",
            )
        interval = schedule_interval(ds.schedule)
        if slo.window < 2 * interval:
            raise _RefError(
                (*loc, "window"),
                f"window is shorter than two check intervals of {slo.dataset!r} "
                f"({ds.schedule}); lengthen the window or check more often",
            )

    def _check_availability_slo(self, slo: SLOConfig, loc: tuple[str, ...]) -> None:
        store = self.feast_sources.get(slo.source or "")
        if store is None:
            raise _RefError(
                (*loc, "source"),
                f"unknown Feast source {slo.source!r}; sli availability is measured by the "
                "online-store probes of a `feast:` source; defined Feast sources: "
                f"{', '.join(map(repr, self.feast_sources)) or 'none'}",
            )
        if slo.window < 2 * store.probe.interval:
            raise _RefError(
                (*loc, "window"),
                f"window is shorter than two probes of source {slo.source!r}; lengthen the "
                "window or probe more often (`probe.interval`)",
            )

    def _check_lineage(self, lineage: LineageConfig) -> None:
        for key, names, known, what in (
            ("sources", lineage.sources, self.warehouse_sources, "source"),
            ("roots", lineage.roots, self.datasets, "dataset"),
        ):
            for i, name in enumerate(names):
                if name not in known:
                    raise _RefError(
                        ("lineage", key, str(i)),
                        f"unknown {what} {name!r}; defined {what}s: "
                        f"{', '.join(map(repr, known)) or 'none'}",
                    )

    def _check_model(self, name: str, model: ModelConfig) -> None:
        loc = ("models", name)
        if name in self.datasets:
            raise _RefError(
                loc,
                f"model {name!r} has the name of a dataset; results, metrics and SLOs name "
                "their subject, so give the model another name",
            )
        sources = []
        for part, ref in (("predictions", model.predictions), ("labels", model.labels)):
            ds = self.datasets.get(ref.dataset)
            if ds is None:
                raise _RefError(
                    (*loc, part, "dataset"),
                    f"unknown dataset {ref.dataset!r}; defined datasets: "
                    f"{', '.join(map(repr, self.datasets)) or 'none'}",
                )
            if ref.timestamp is None and ds.timestamp is None:
                what = "prediction time" if part == "predictions" else "time a label became known"
                raise _RefError(
                    (*loc, part, "timestamp"),
                    f"needs the {what}: set {part}.timestamp, or `timestamp:` on dataset "
                    f"{ref.dataset!r}",
                )
            sources.append(ds.source)
        if sources[0] != sources[1]:
            raise _RefError(
                (*loc, "labels", "dataset"),
                f"labels live in source {sources[1]!r} and predictions in {sources[0]!r}; they are "
                "joined in one query, so both datasets need the same source",
            )
        for i, served in enumerate(model.feature_views):
            store, _, view = served.partition("/")
            if store not in self.feast_sources or not view:
                raise _RefError(
                    (*loc, "feature_views", str(i)),
                    f"{served!r} is not `<feast source>/<feature view>`; Feast sources: "
                    f"{', '.join(map(repr, self.feast_sources)) or 'none'}",
                )

    def _check_model_slo(self, slo: SLOConfig, loc: tuple[str, ...]) -> None:
        model = self.models.get(slo.model or "")
        if model is None:
            raise _RefError(
                (*loc, "model"),
                f"unknown model {slo.model!r}; defined models: "
                f"{', '.join(map(repr, self.models)) or 'none'}",
            )
        if slo.sli not in ("accuracy", "latency"):
            raise _RefError(
                (*loc, "sli"),
                f"sli {slo.sli} is about a dataset; a model's SLIs are accuracy and latency",
            )
        if slo.dataset is not None:
            raise _RefError(
                (*loc, "dataset"),
                f"sli {slo.sli} is about model {slo.model!r}; remove `dataset:`",
            )
        if slo.sli == "latency" and (
            model.predictions.latency is None or model.latency_threshold is None
        ):
            raise _RefError(
                (*loc, "sli"),
                f"sli latency needs predictions.latency and latency_threshold on model "
                f"{slo.model!r} (a prediction is good when served within the threshold)",
            )
        if slo.sli == "accuracy" and model.task == "regression" and model.tolerance is None:
            raise _RefError(
                (*loc, "sli"),
                f"sli accuracy of regression model {slo.model!r} needs `tolerance:` on the "
                "model (a prediction is good when |error| <= tolerance)",
            )
        if slo.window < 2 * schedule_interval(model.schedule):
            raise _RefError(
                (*loc, "window"),
                f"window is shorter than two runs of model {slo.model!r} ({model.schedule}); "
                "lengthen the window or run it more often",
            )

    def _expand_openslo(self) -> None:
        if not any(isinstance(s, OpenSLOFile) for s in self.slos):
            return
        from osemn.rules.openslo import load_openslo

        expanded: list[SLOConfig | OpenSLOFile] = []
        for i, item in enumerate(self.slos):
            if isinstance(item, OpenSLOFile):
                path = Path(item.openslo)
                try:
                    expanded.extend(load_openslo(self.base_dir / path))
                except ConfigError as exc:
                    raise _RefError(("slos", str(i), "openslo"), str(exc)) from None
            else:
                expanded.append(item)
        object.__setattr__(self, "slos", tuple(expanded))

    @property
    def slo_list(self) -> tuple[SLOConfig, ...]:
        """The SLOs, OpenSLO files already read."""
        return tuple(s for s in self.slos if isinstance(s, SLOConfig))


def schedule_interval(schedule: Schedule) -> timedelta:
    """The (longest) time between two runs of a schedule, for window widening.

    A cron schedule's interval is the longest gap among its next few fire times.
    """
    if schedule.interval is not None:
        return schedule.interval
    from datetime import UTC, datetime

    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(str(schedule.cron), timezone=UTC)
    times: list[datetime] = []
    previous: datetime | None = None
    now = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: any fixed start gives the same gaps
    for _ in range(64):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return max(gaps, default=timedelta(days=1))


class _RefError(ValueError):
    """A cross-reference error that knows which key it is about."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        self.loc = loc
        super().__init__(message)


# --- loading -----------------------------------------------------------------


def _interpolate(text: str, *, env: Mapping[str, str], path: str, line: int, key: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set; export it, or write ${{{name}:-default}}",
            path=path,
            line=line,
            key=key,
        )

    return _ENV.sub(replace, text)


def _to_python(
    node: yaml.Node,
    *,
    loc: tuple[str, ...],
    lines: dict[tuple[str, ...], int],
    env: Mapping[str, str],
    path: str,
) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                raise ConfigError(
                    "duplicate key; keep one",
                    path=path,
                    line=key_node.start_mark.line + 1,
                    key=".".join((*loc, key)),
                )
            out[key] = _to_python(value_node, loc=(*loc, key), lines=lines, env=env, path=path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, loc=(*loc, str(i)), lines=lines, env=env, path=path)
            for i, item in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)
    value = _SCALARS.yaml_constructors[node.tag](_SCALARS, node)
    if isinstance(value, str) and "${" in value:
        text = _interpolate(value, env=env, path=path, line=lines[loc], key=".".join(loc))
        # An interpolated value is typed as YAML would type it if written in place.
        value = text if node.style in ("'", '"') else yaml.safe_load(text) if text else text
    return value


def parse_config(
    text: str, *, path: str = "osemn.yaml", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate osemn.yaml text.

    Raises:
        ConfigError: naming ``path:line: key``, what is wrong and what would be valid.
    """
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", path=path, line=line) from None
    if node is None or not isinstance(node, yaml.MappingNode):
        raise ConfigError("must be a mapping with at least `version: 1` and `sources:`", path=path)
    lines: dict[tuple[str, ...], int] = {}
    data = _to_python(node, loc=(), lines=lines, env=env, path=path)
    base_dir = Path(path).resolve().parent
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(exc, lines=lines, path=path) from None


def _config_error(
    exc: ValidationError, *, lines: Mapping[tuple[str, ...], int], path: str
) -> ConfigError:
    problems = []
    first: tuple[int | None, str] | None = None
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _RefError):
            loc = ctx_error.loc
        tags = [p for p in loc if p not in _KNOWN_KEYS and _is_type_tag(p)]
        loc = tuple(p for p in loc if p in _KNOWN_KEYS or not _is_type_tag(p))
        msg = _explain(err, loc, tags)
        line = _line_for(loc, lines)
        problems.append((line, ".".join(loc), msg))
        if first is None:
            first = (line, ".".join(loc))
    assert first is not None
    line, key = first
    message = problems[0][2]
    if len(problems) > 1:
        message += "".join(
            f"\n  {path}:{ln}: {k}: {m}" if ln else f"\n  {path}: {k}: {m}"
            for ln, k, m in problems[1:]
        )
    return ConfigError(message, path=path, line=line, key=key or None)


def _is_type_tag(part: str) -> bool:
    # pydantic adds union/type tags like "FreshnessConfig" or "timedelta" to locations.
    return part[:1].isupper() or part in _TYPE_TAGS


# Tags pydantic puts in locations of unions: scalar types and our discriminators.
_TYPE_TAGS = frozenset(
    {"timedelta", "str", "int", "slo", "openslo", "warehouse_source", "feast_source"}
    | {"webhook", "alertmanager", "slack", "pagerduty", "file"}
)


def _line_for(loc: tuple[str, ...], lines: Mapping[tuple[str, ...], int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _explain(err: Any, loc: tuple[str, ...], tags: Sequence[str] = ()) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = loc[-2] if len(loc) >= 2 else "the top level"
        valid = _VALID_KEYS.get(loc[-2] if len(loc) >= 2 else "", _VALID_KEYS[""])
        if loc[:1] == ("sources",) and "feast_source" in tags:
            valid = _VALID_KEYS["feature_views" if "feature_views" in loc[:-2] else "feast"]
            if len(loc) == 4 and loc[2] in ("probe", "parity"):
                valid = _VALID_KEYS[loc[2]]
        elif len(loc) >= 3 and loc[0] in ("datasets", "sources", "slos", "models"):
            valid = _VALID_KEYS[loc[0]] if len(loc) == 3 else _VALID_KEYS.get(loc[-2], valid)
        elif loc[:2] == ("alerting", "receivers") and len(loc) == 4:
            valid = next(
                (_RECEIVER_KEYS[t] for t in tags if t in _RECEIVER_KEYS), _VALID_KEYS["receivers"]
            )
        elif loc[:2] == ("alerting", "routes") and len(loc) == 4:
            valid = _VALID_KEYS["routes"]
        return f"unknown key in {parent}; valid keys: {', '.join(valid)}"
    if kind == "missing" and loc[:1] == ("sources",) and len(loc) == 3 and loc[2] == "url":
        return (
            "a source needs `url:` (a warehouse's SQLAlchemy URL) or `feast:` (a Feast repo "
            "folder with feature_store.yaml)"
        )
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error" and loc == ("version",):
        return f"unsupported version {err.get('input')!r}; this osemn reads version: 1"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind not in ("value_error",) and "input" in err and not isinstance(err["input"], dict):
        msg += f" (got {err['input']!r})"
    return msg


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f.alias or name for name, f in model.model_fields.items() if not f.exclude)


# Valid keys by the name of the block they sit in, for "unknown key" errors.
_VALID_KEYS: dict[str, tuple[str, ...]] = {
    "": _keys(Config),
    "agent": _keys(AgentConfig),
    "sources": _keys(SourceConfig),
    "feast": _keys(FeastSourceConfig),
    "probe": _keys(ProbeConfig),
    "parity": _keys(ParityConfig),
    "feature_views": _keys(FeatureViewOptions),
    "datasets": _keys(DatasetConfig),
    "freshness": _keys(FreshnessConfig),
    "volume": _keys(VolumeConfig),
    "failures": _keys(FailuresConfig),
    "drift": _keys(DriftConfig),
    "models": _keys(ModelConfig),
    "predictions": _keys(PredictionsConfig),
    "labels": _keys(LabelsConfig),
    "reference": _keys(ReferenceWindow),
    "current": _keys(CurrentWindow),
    "seasonal": _keys(SeasonalReference),
    "slos": _keys(SLOConfig),
    "alerting": _keys(AlertingConfig),
    "routes": _keys(RouteConfig),
    "lineage": _keys(LineageConfig),
    "openlineage": _keys(OpenLineageConfig),
}
_RECEIVER_KEYS: dict[str, tuple[str, ...]] = {
    m.model_fields["type"].annotation.__args__[0]: _keys(m)  # type: ignore[union-attr]
    for m in (WebhookReceiver, AlertmanagerReceiver, SlackReceiver, PagerDutyReceiver, FileReceiver)
}
_VALID_KEYS["receivers"] = tuple(dict.fromkeys(k for keys in _RECEIVER_KEYS.values() for k in keys))
_KNOWN_KEYS = frozenset(_VALID_KEYS).union(*_VALID_KEYS.values())


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate an osemn.yaml file.

    Raises:
        ConfigError: when the file cannot be read or is not a valid config.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config: {exc.strerror}; check the -c path", path=str(p)
        ) from None
    return parse_config(text, path=str(p), env=env)
