"""Updating many rows at once: on PostgreSQL one COPY into a temporary table and one UPDATE ... FROM.

Django's ``bulk_update`` writes a CASE expression per field whose cost grows with the square of the batch
size; re-linking a million records needs a path that grows linearly.
"""

import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, models, transaction


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
    staging = connection.ops.quote_name(f"staging_{meta.db_table}")
    definitions = ", ".join(
        f"{connection.ops.quote_name(field.column)} {field.db_type(connection)}" for field in columns
    )
    pk: Any = meta.pk
    pk_column = connection.ops.quote_name(pk.column)
    # ON COMMIT DROP needs a transaction around the whole exchange (the caller's, or this one).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staging}")
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} (pk bigint, {definitions}) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {staging} FROM STDIN") as copy:
            for row in rows:
                values: list[Any] = [row.pk]
                for field in columns:
                    value = getattr(row, field.attname)
                    if isinstance(field, models.JSONField):
                        value = json.dumps(value, ensure_ascii=False)
                    values.append(value)
                copy.write_row(values)
        assignments = ", ".join(
            f"{connection.ops.quote_name(field.column)} = s.{connection.ops.quote_name(field.column)}"
            for field in columns
        )
        # Only quoted identifiers from the model's metadata are interpolated; values travel by COPY.
        update = f"UPDATE {table} AS t SET {assignments} FROM {staging} AS s WHERE t.{pk_column} = s.pk"  # noqa: S608
        cursor.execute(update)
        cursor.execute(f"DROP TABLE {staging}")
        return len(rows)
