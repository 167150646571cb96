"""Stable rule names: ``column:rule(args)``, the label values of osemn's metrics."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd

from osemn.checks.builtins import Builtin

__all__ = ["plain", "rule_name"]

# Longest argument list a rule name shows in full.
_MAX_ARGS = 120


def rule_name(column: str | None, check: Any, spec: Builtin | None) -> str:
    """``column:check(args)`` with positional args bare and defaults left out."""
    stats = {k: plain(v) for k, v in (check.statistics or {}).items()}
    args = []
    for key, value in stats.items():
        if spec is not None and key in spec.positional:
            args.append(_show(value))
        elif spec is not None and key in spec.defaults and _same(value, spec.defaults[key]):
            continue
        else:
            args.append(f"{key}={_show(value)}")
    shown = ", ".join(args)
    if len(shown) > _MAX_ARGS:  # a 10,000-value isin: keep labels short, still distinct
        digest = hashlib.sha256(shown.encode()).hexdigest()[:8]
        shown = f"{shown[: _MAX_ARGS - 20]}... #{digest}"
    rule = f"{check.name}({shown})" if args else str(check.name)
    return rule if column is None else f"{column}:{rule}"


def _same(value: Any, default: Any) -> bool:
    return type(value) is type(default) and bool(value == default)


def _show(value: Any) -> str:
    """``repr``, made stable: sets sorted, dates as ISO strings, patterns as their source."""
    if isinstance(value, set | frozenset):
        try:
            items = sorted(value)
        except TypeError:
            items = sorted(value, key=repr)
        return "[" + ", ".join(_show(v) for v in items) + "]"
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_show, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dt.date | dt.time):
        return repr(value.isoformat())
    if isinstance(value, dt.timedelta):
        return repr(str(value))
    if isinstance(value, re.Pattern) and not value.flags & ~re.UNICODE:
        return repr(value.pattern)
    return repr(value)


def plain(value: Any) -> Any:
    """numpy and pandas scalars as the plain Python values drivers bind."""
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(plain(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    if isinstance(value, np.generic):
        return value.item()
    return value
