"""Logical kinds of warehouse column types and pandera dtypes, and when they agree.

A warehouse never holds a ``float64``: it holds ``DOUBLE PRECISION``,
``DOUBLE`` or ``REAL``. Both sides are reduced to a logical :class:`Kind`
and compared there, so one pandera schema checks the same table on DuckDB,
SQLite, PostgreSQL and MariaDB.

Compatibility rules (``accepts``):

* no dtype, or ``object``: anything (pandas reads any column into ``object``);
* int accepts integer, and decimal of scale 0 (``NUMERIC(18, 0)`` holds integers);
* float accepts float and decimal; decimal accepts decimal;
* str accepts string; bool accepts boolean (MySQL ``BOOLEAN`` is ``TINYINT(1)``);
* datetime accepts datetime *with or without a time zone*: the time zone is a
  representation choice of the warehouse (MySQL ``DATETIME`` and SQLite have
  none, drivers convert ``timestamptz``), not a different kind of value;
* date, time, timedelta and binary accept their own kind;
* category accepts string, integer and boolean (the usual categories);
* with ``coerce=True`` pandera converts values first, so a numeric dtype also
  accepts any numeric kind and str accepts anything.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError
from sqlalchemy.types import TypeEngine

if TYPE_CHECKING:
    import pandera.dtypes as pdt

__all__ = ["Kind", "accepts", "pandera_kind", "warehouse_kind", "warehouse_type_name"]


class Kind(enum.StrEnum):
    """What a column holds, whatever the engine calls it."""

    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    STRING = "string"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    DATE = "date"
    TIME = "time"
    TIMEDELTA = "timedelta"
    BINARY = "binary"
    OTHER = "other"


# The Python type a SQLAlchemy type hands back is public API and the same on
# every dialect; exact-type lookup because datetime is a subclass of date.
_BY_PYTHON_TYPE: dict[type, Kind] = {
    bool: Kind.BOOLEAN,
    int: Kind.INTEGER,
    str: Kind.STRING,
    dt.datetime: Kind.DATETIME,
    dt.date: Kind.DATE,
    dt.time: Kind.TIME,
    dt.timedelta: Kind.TIMEDELTA,
    bytes: Kind.BINARY,
}

_NUMERIC = frozenset({Kind.INTEGER, Kind.FLOAT, Kind.DECIMAL, Kind.BOOLEAN})

_ACCEPTED: dict[Kind, frozenset[Kind]] = {
    Kind.INTEGER: frozenset({Kind.INTEGER}),
    Kind.FLOAT: frozenset({Kind.FLOAT, Kind.DECIMAL}),
    Kind.DECIMAL: frozenset({Kind.DECIMAL}),
    Kind.STRING: frozenset({Kind.STRING}),
    Kind.BOOLEAN: frozenset({Kind.BOOLEAN}),
    Kind.DATETIME: frozenset({Kind.DATETIME}),
    Kind.DATE: frozenset({Kind.DATE}),
    Kind.TIME: frozenset({Kind.TIME}),
    Kind.TIMEDELTA: frozenset({Kind.TIMEDELTA}),
    Kind.BINARY: frozenset({Kind.BINARY}),
    Kind.OTHER: frozenset({Kind.OTHER}),
}


def warehouse_kind(type_: TypeEngine[Any]) -> Kind:
    """The logical kind of a column type as the SQLAlchemy inspector reflects it."""
    if isinstance(type_, mysql.TINYINT) and type_.display_width == 1:
        return Kind.BOOLEAN  # MySQL and MariaDB spell BOOLEAN as TINYINT(1)
    if isinstance(type_, sa.Float):  # before Numeric: Float is a Numeric
        return Kind.FLOAT
    if isinstance(type_, sa.Numeric):
        return Kind.DECIMAL
    try:
        python_type = type_.python_type
    except NotImplementedError:  # NullType, YEAR, BIT, ... have none
        return Kind.OTHER
    return _BY_PYTHON_TYPE.get(python_type, Kind.OTHER)


def pandera_kind(dtype: pdt.DataType) -> Kind:
    """The logical kind of a pandera dtype (``int64``, ``Int32``, ``string[python]``...)."""
    import pandera.dtypes as pdt  # pandas loads only where a pandera schema is used

    if pdt.is_bool(dtype):
        return Kind.BOOLEAN
    if pdt.is_int(dtype):
        return Kind.INTEGER
    if pdt.is_float(dtype):
        return Kind.FLOAT
    if isinstance(dtype, pdt.Decimal):
        return Kind.DECIMAL
    if pdt.is_string(dtype):
        return Kind.STRING
    if pdt.is_datetime(dtype):  # before Date: pandera's Timestamp is a Date
        return Kind.DATETIME
    if isinstance(dtype, pdt.Date):
        return Kind.DATE
    if isinstance(dtype, pdt.Time):
        return Kind.TIME
    if pdt.is_timedelta(dtype):
        return Kind.TIMEDELTA
    if pdt.is_binary(dtype):
        return Kind.BINARY
    return Kind.OTHER


def accepts(dtype: pdt.DataType | None, type_: TypeEngine[Any], *, coerce: bool = False) -> bool:
    """Whether a column of warehouse type ``type_`` satisfies pandera ``dtype``.

    :param dtype: the pandera dtype of the schema column; None accepts anything.
    :param type_: the reflected SQLAlchemy type of the table column.
    :param coerce: the column's ``coerce``; pandera converts first, so it widens.
    """
    if dtype is None or str(dtype) == "object":
        return True
    import pandera.dtypes as pdt

    have = warehouse_kind(type_)
    if pdt.is_category(dtype):
        return have in {Kind.STRING, Kind.INTEGER, Kind.BOOLEAN}
    want = pandera_kind(dtype)
    if coerce and want is Kind.STRING:
        return True
    if coerce and want in _NUMERIC and have in _NUMERIC:
        return True
    if want is Kind.INTEGER and have is Kind.DECIMAL:
        return getattr(type_, "scale", None) == 0
    return have in _ACCEPTED[want]


def warehouse_type_name(type_: TypeEngine[Any], dialect: Dialect) -> str:
    """The type as the warehouse spells it (``DOUBLE PRECISION``), for messages."""
    try:
        return str(type_.compile(dialect=dialect))
    except CompileError:  # NullType and dialect-foreign types do not render
        return type(type_).__name__
