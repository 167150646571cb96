"""Schemas referenced as ``module:attribute`` by tests/checks/test_schema_load.py."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series


class OrdersModel(pa.DataFrameModel):
    """A model whose schema the loader returns via ``to_schema()``."""

    id: Series[int] = pa.Field(unique=True)
    amount: Series[float] = pa.Field(ge=0, nullable=True)
    status: Series[str] = pa.Field(isin=["new", "paid"])

    class Config:
        strict = True


class Nested:
    """Holds a model one attribute deeper (``module:Nested.Model``)."""

    class Model(pa.DataFrameModel):
        code: Series[str] = pa.Field(str_length={"min_value": 2, "max_value": 3})


class BadModel(pa.DataFrameModel):
    """pandera refuses this model only when it builds the schema."""

    amount: Series[float]

    @pa.check("no_such_field")
    @classmethod
    def positive(cls, series: Series[float]) -> Series[bool]:
        return series > 0


class NotAModel:
    """A class that is no pandera model."""


orders_schema = pa.DataFrameSchema({"id": pa.Column(int)})
answer = 42
