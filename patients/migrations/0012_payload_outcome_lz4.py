"""A payload's outcome (every entry's answer: 250 of them for a Synthea bundle, about 20 kB) is compressed
with lz4 instead of pglz (PostgreSQL 14+ built with lz4), as its body is since 0009.

Processing writes the outcome once per payload; on the benchmark machine the statement that writes it took
about half as long with lz4. Outcomes already stored keep their compression; a server without lz4 keeps pglz.
"""

from django.db import migrations

USE_LZ4 = """
DO $$
BEGIN
    ALTER TABLE patients_inboundpayload ALTER COLUMN outcome SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'payload outcomes keep the default compression: %%', SQLERRM;
END $$
"""
USE_DEFAULT = """
DO $$
BEGIN
    ALTER TABLE patients_inboundpayload ALTER COLUMN outcome SET COMPRESSION default;
EXCEPTION WHEN OTHERS THEN
    NULL;
END $$
"""


def lz4_use(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(USE_LZ4)


def lz4_stop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(USE_DEFAULT)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0011_patient_search_given_family"),
    ]

    operations = [migrations.RunPython(lz4_use, lz4_stop)]
