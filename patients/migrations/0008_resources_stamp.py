"""Count changes to each source record's resources in PostgreSQL triggers (see SourceResourcesStamp)."""

import django.db.models.deletion
from django.db import migrations, models

# One trigger per statement and event (PostgreSQL allows transition tables on single-event triggers only).
# Stamps are taken in record order, so two writers touching the same records cannot deadlock on them.
CREATE = [
    """
CREATE FUNCTION patients_resources_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO patients_sourceresourcesstamp AS stamp (source_patient_id, changes)
        SELECT DISTINCT patient_id, 1 FROM new_rows WHERE patient_id IS NOT NULL ORDER BY patient_id
        ON CONFLICT (source_patient_id) DO UPDATE SET changes = stamp.changes + 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO patients_sourceresourcesstamp AS stamp (source_patient_id, changes)
        SELECT DISTINCT patient_id, 1 FROM old_rows WHERE patient_id IS NOT NULL ORDER BY patient_id
        ON CONFLICT (source_patient_id) DO UPDATE SET changes = stamp.changes + 1;
    ELSE
        INSERT INTO patients_sourceresourcesstamp AS stamp (source_patient_id, changes)
        SELECT patient_id, 1 FROM (
            SELECT patient_id FROM new_rows UNION SELECT patient_id FROM old_rows
        ) AS touched WHERE patient_id IS NOT NULL ORDER BY patient_id
        ON CONFLICT (source_patient_id) DO UPDATE SET changes = stamp.changes + 1;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER patients_resources_stamp_insert AFTER INSERT ON patients_sourceresource
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION patients_resources_stamp()""",
    """CREATE TRIGGER patients_resources_stamp_update AFTER UPDATE ON patients_sourceresource
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION patients_resources_stamp()""",
    """CREATE TRIGGER patients_resources_stamp_delete AFTER DELETE ON patients_sourceresource
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION patients_resources_stamp()""",
    # Records that already have resources start counted.
    """INSERT INTO patients_sourceresourcesstamp (source_patient_id, changes)
    SELECT DISTINCT patient_id, 1 FROM patients_sourceresource WHERE patient_id IS NOT NULL""",
]
DROP = [
    "DROP TRIGGER IF EXISTS patients_resources_stamp_insert ON patients_sourceresource",
    "DROP TRIGGER IF EXISTS patients_resources_stamp_update ON patients_sourceresource",
    "DROP TRIGGER IF EXISTS patients_resources_stamp_delete ON patients_sourceresource",
    "DROP FUNCTION IF EXISTS patients_resources_stamp()",
]


def triggers_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def triggers_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0007_resource_coding"),
    ]

    operations = [
        migrations.CreateModel(
            name="SourceResourcesStamp",
            fields=[
                (
                    "source_patient",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="resources_stamp",
                        serialize=False,
                        to="patients.sourcepatient",
                    ),
                ),
                ("changes", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
