"""Compress large payloads and resources with lz4 instead of pglz on PostgreSQL.

Landing stores every payload's bytes and the documents of every resource; pglz compression of those
costs more CPU than parsing them. lz4 (PostgreSQL 14+, built with lz4) is several times faster.
"""

from django.db import migrations

COLUMNS = [
    ("patients_inboundpayload", "body"),
    ("patients_sourcepatient", "resource"),
    ("patients_sourceresource", "resource"),
    ("patients_resourceversion", "resource"),
]


def _set_compression(method: str):
    def apply(apps, schema_editor):
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            # The server lists lz4 among the choices only when it was built with it.
            cursor.execute(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND %s = ANY(enumvals)", [method]
            )
            if cursor.fetchone() is None:
                return
        for table, column in COLUMNS:
            schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")

    return apply


class Migration(migrations.Migration):
    dependencies = [("patients", "0002_ingestion")]

    operations = [migrations.RunPython(_set_compression("lz4"), _set_compression("pglz"))]
