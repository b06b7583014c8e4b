"""Updating many rows at once, on PostgreSQL with one UPDATE ... FROM whatever the number of rows.

Django's ``bulk_update`` writes a CASE expression per field whose cost grows with the square of the batch
size; re-linking a million records needs a path that grows linearly. Up to ``ARRAY_ROWS`` rows travel as
one array parameter per column (``unnest``); more go through COPY into a temporary table, which costs a
few catalog writes per call (a golden record rebuilt per ingested payload updates one row).
"""

import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, models, transaction

ARRAY_ROWS = 1000


def _db_value(field: Any, row: models.Model) -> Any:
    value = getattr(row, field.attname)
    if isinstance(field, models.JSONField):
        return json.dumps(value, ensure_ascii=False)
    return value


def rows_update(model: type[models.Model], rows: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write ``fields`` of ``rows`` (instances with a primary key) to the database; return the count."""
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(rows, list(fields), batch_size=200)
        return len(rows)
    meta = model._meta
    # Concrete fields only (never reverse relations): Any keeps the stubs' union out of the way.
    columns: list[Any] = [meta.get_field(name) for name in fields]
    table = connection.ops.quote_name(meta.db_table)
    pk: Any = meta.pk
    pk_column = connection.ops.quote_name(pk.column)
    if len(rows) <= ARRAY_ROWS:
        return _rows_update_arrays(table, pk_column, columns, rows)
    staging = connection.ops.quote_name(f"staging_{meta.db_table}")
    definitions = ", ".join(
        f"{connection.ops.quote_name(field.column)} {field.db_type(connection)}" for field in columns
    )
    # ON COMMIT DROP needs a transaction around the whole exchange (the caller's, or this one).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} (pk bigint, {definitions}) ON COMMIT DROP")
        with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {staging} FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.pk, *(_db_value(field, row) for field in columns)])
        assignments = ", ".join(
            f"{connection.ops.quote_name(field.column)} = s.{connection.ops.quote_name(field.column)}"
            for field in columns
        )
        # Only quoted identifiers from the model's metadata are interpolated; values travel by COPY.
        update = f"UPDATE {table} AS t SET {assignments} FROM {staging} AS s WHERE t.{pk_column} = s.pk"  # noqa: S608
        cursor.execute(update)
        cursor.execute(f"DROP TABLE {staging}")
        return len(rows)


def _array_type(field: Any) -> str:
    db_type = str(field.db_type(connection))
    if isinstance(field, models.JSONField) or db_type.startswith(("varchar", "char")):
        return "text"
    return db_type


def _rows_update_arrays(table: str, pk_column: str, columns: list[Any], rows: Sequence[models.Model]) -> int:
    quote = connection.ops.quote_name
    # JSON travels as text and is cast per value (an array of jsonb would need each text cast anyway), and
    # strings as text, so that a value too long for its column fails as it would in any UPDATE rather than
    # being cut by a cast to varchar(n).
    array_types = [_array_type(field) for field in columns]
    names = ", ".join(quote(field.column) for field in columns)
    arrays = ", ".join(f"%s::{array_type}[]" for array_type in array_types)
    assignments = ", ".join(
        f"{quote(field.column)} = s.{quote(field.column)}{'::jsonb' if isinstance(field, models.JSONField) else ''}"
        for field in columns
    )
    # Only quoted identifiers and column types from the model's metadata are interpolated; values are parameters.
    update = (
        f"UPDATE {table} AS t SET {assignments} "  # noqa: S608
        f"FROM unnest(%s::bigint[], {arrays}) AS s(pk, {names}) WHERE t.{pk_column} = s.pk"
    )
    parameters = [[row.pk for row in rows], *([_db_value(field, row) for row in rows] for field in columns)]
    with connection.cursor() as cursor:
        cursor.execute(update, parameters)
    return len(rows)
