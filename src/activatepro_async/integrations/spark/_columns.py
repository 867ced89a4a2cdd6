"""A DataFrame's columns as the row rules see them: Spark's types to a plan, the plan to users.

The column rules (renames with ``mapping=``, columns left out, two columns
with one key, the required ``id`` and ``email``) are :mod:`.._rows`'s, the
``activatepro`` command's too. What is Spark's own is how each type travels:
on the driver, :func:`plan_upsert` picks for every column an expression the
JVM computes (timestamps as epoch microseconds, exact whatever the session's
time zone; decimals as numbers; nested values as JSON text in UTC; integer
ids as strings) and a kind; on the executor, :func:`row_converter` turns the
values of each kind into wire values and leaves nulls out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._rows import Caster, RowRules, Spelling, positional, required_keys
from ..._wire import date_to_wire, micros_to_wire
from ._pyspark import F, T

if TYPE_CHECKING:
    # pyarrow ships no type hints (pyarrow-stubs does, unpinned here).
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    from pyspark.sql import Column, DataFrame

__all__ = [
    "Plan",
    "batch_converter",
    "delete_converter",
    "plan_delete",
    "plan_upsert",
    "row_converter",
    "wire_names",
]

#: The keys a job sends and the kind of each, in the order of the selected columns.
Plan = tuple[tuple[str, int], ...]

# How a selected column's value becomes a wire value on the executor.
_PLAIN = 0  # as it is (str, int, float, bool)
_MICROS = 1  # epoch microseconds of a TimestampType -> "2015-10-02T08:23:53Z"
_DATE = 2  # datetime.date -> "1982-08-30"
_JSON = 3  # JSON text of a nested value (made by to_json in the JVM) -> its value

# Nested timestamps are written by Spark's to_json, in UTC with Z; Spark's
# formatter has no "fraction only when there is one", so they always carry
# microseconds ("2020-03-01T23:30:00.000000Z"), which the API takes as well.
_JSON_OPTIONS = {
    "timeZone": "UTC",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'",
    "dateFormat": "yyyy-MM-dd",
}

#: How the messages of the row rules name Spark's options.
MAPPING = Spelling("mapping=", "mapping={{{column!r}: {key!r}}}", "mapping={{{column!r}: None}}")
_ID_COLUMN = Spelling("id_column=", "id_column={column!r}", "id_column=")
_SOURCE = "the DataFrame"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def wire_names(
    columns: Iterable[str], mapping: Mapping[str, str | None] | None
) -> list[str | None]:
    """The wire key of each column: its name, its new name in ``mapping``, or ``None``.

    As ``activatepro import --map col=key`` (and ``--map col=``): a column
    mapped to ``None`` is left out. Raises ``ValueError`` for a mapped column
    that does not exist, or for two columns that end up with the same key.

    >>> wire_names(["user_id", "mail", "internal"], {"user_id": "id", "internal": None})
    ['id', 'mail', None]
    """
    return RowRules(mapping, required=(), spelling=MAPPING).keys(list(columns), _SOURCE)


def _column_plan(field: T.StructField, wire: str) -> tuple[Column | None, int]:
    """The select expression and value kind of one column; ``None`` drops it."""
    col = F.col(_quoted(field.name))
    kind = field.dataType
    if isinstance(kind, T.NullType):
        return None, _PLAIN  # always null: always left out
    if wire == "id" and isinstance(kind, T.IntegralType):
        # The API's ids are strings; warehouses often keep them as numbers.
        return col.cast("string"), _PLAIN
    if isinstance(kind, T.TimestampType):
        # Exact in any session time zone (a Python datetime from Spark is local time).
        return F.unix_micros(col), _MICROS
    if isinstance(kind, T.TimestampNTZType):
        raise TypeError(
            f"column {field.name!r} is TIMESTAMP_NTZ, a time with no time zone, and the API "
            f"stores UTC: convert it, e.g. F.to_utc_timestamp({field.name!r}, 'Europe/Berlin')"
        )
    if isinstance(kind, T.DateType):
        return col, _DATE
    if isinstance(kind, T.DecimalType):
        whole = kind.scale == 0 and kind.precision <= 18
        return col.cast("long" if whole else "double"), _PLAIN
    if isinstance(kind, (T.BinaryType, T.CalendarIntervalType, T.DayTimeIntervalType)):
        raise TypeError(
            f"column {field.name!r} is {kind.simpleString()}, which JSON cannot carry: "
            "convert it to a string or a number, or drop it"
        )
    if isinstance(kind, (T.ArrayType, T.MapType, T.StructType)):
        return F.to_json(col, _JSON_OPTIONS), _JSON
    return col, _PLAIN


def plan_upsert(
    df: DataFrame, mapping: Mapping[str, str | None] | None
) -> tuple[list[Column], Plan]:
    """What to select from ``df`` for an upsert, and the plan of what the selection holds."""
    fields = df.schema.fields
    rules = RowRules(mapping, required=required_keys("upsert"), spelling=MAPPING)
    keys = rules.keys([f.name for f in fields], _SOURCE)
    selects: list[Column] = []
    plan: list[tuple[str, int]] = []
    for field, key in zip(fields, keys, strict=True):
        if key is None:
            continue
        col, kind = _column_plan(field, key)
        if col is not None:
            selects.append(col)
            plan.append((key, kind))
    return selects, tuple(plan)


def plan_delete(df: DataFrame, id_column: str) -> list[Column]:
    """What to select from ``df`` for a delete: its ids, as strings."""
    fields = {f.name: f for f in df.schema.fields}
    # Only the ids are read: every other column is left out.
    renames: dict[str, str | None] = {name: None for name in fields if name != id_column}
    renames[id_column] = "id"
    RowRules(renames, required=required_keys("delete"), spelling=_ID_COLUMN).keys(
        list(fields), _SOURCE
    )
    col, _ = _column_plan(fields[id_column], "id")
    assert col is not None
    kind = df.select(col).schema.fields[0].dataType
    if not isinstance(kind, T.StringType):
        raise TypeError(f"column {id_column!r} is {kind.simpleString()}: user ids are strings")
    return [col]


_CASTS: dict[int, Caster] = {_MICROS: micros_to_wire, _DATE: date_to_wire, _JSON: json.loads}


def row_converter(plan: Plan) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """The function that turns a selected row (a ``Row``, or a tuple of its values) into a user."""
    return positional(
        [key for key, _ in plan], {key: _CASTS[kind] for key, kind in plan if kind != _PLAIN}
    )


def batch_converter(plan: Plan) -> Callable[[pa.RecordBatch], pa.RecordBatch] | None:
    """The function that turns a selected record batch into users for the columnar path.

    Each column gets its wire key (the selected columns carry Spark's
    expression names) and epoch microseconds become UTC timestamps, which the
    columnar path writes as the Row path does. ``None`` when a column holds
    nested values: Spark hands them over as JSON text, which the columnar path
    would send as a string, so those batches are read per cell (see
    :func:`row_converter`) as the columnar path reads nested columns anyway.
    A delete's plan is empty: its one column is the id.
    """
    if any(kind == _JSON for _, kind in plan):
        return None
    from ..._columnar import arrow_modules, rename_columns

    pyarrow, _ = arrow_modules()
    keys = [key for key, _ in plan] or ["id"]
    micros = [i for i, (_, kind) in enumerate(plan) if kind == _MICROS]
    utc = pyarrow.timestamp("us", tz="UTC")

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        for i in micros:  # the same 64 bits, read as UTC instants (no copy)
            batch = batch.set_column(i, batch.schema.field(i).name, batch.column(i).view(utc))
        return rename_columns(batch, keys)

    return convert


def delete_converter(row: Sequence[Any]) -> dict[str, Any]:
    """A selected row as the user to delete, ``{"id": ...}``.

    A mapping, not the bare id: a null id is then the bulk engine's "the user
    has no id", as on the columnar path, not "got NoneType" (an item of the
    wrong type).
    """
    return {"id": row[0]}
