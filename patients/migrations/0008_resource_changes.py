"""Count changes to each source record's resources in PostgreSQL triggers (see SourceResourcesChange)."""

import django.db.models.deletion
from django.db import migrations, models

# One trigger per statement and event (PostgreSQL allows transition tables on single-event triggers only).
# Each adds a row per source record whose resources the statement touched; rows are never updated, so
# concurrent writers do not wait on each other (nor deadlock) over them.
CREATE = [
    """
CREATE FUNCTION patients_resources_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO patients_sourceresourceschange (source_patient_id)
        SELECT DISTINCT patient_id FROM new_rows WHERE patient_id IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO patients_sourceresourceschange (source_patient_id)
        SELECT DISTINCT patient_id FROM old_rows WHERE patient_id IS NOT NULL;
    ELSE
        INSERT INTO patients_sourceresourceschange (source_patient_id)
        SELECT patient_id FROM (SELECT patient_id FROM new_rows UNION SELECT patient_id FROM old_rows) AS touched
         WHERE patient_id IS NOT NULL;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER patients_resources_changed_insert AFTER INSERT ON patients_sourceresource
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION patients_resources_changed()""",
    """CREATE TRIGGER patients_resources_changed_update AFTER UPDATE ON patients_sourceresource
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION patients_resources_changed()""",
    """CREATE TRIGGER patients_resources_changed_delete AFTER DELETE ON patients_sourceresource
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION patients_resources_changed()""",
    # Records that already have resources start with one change.
    """INSERT INTO patients_sourceresourceschange (source_patient_id)
    SELECT DISTINCT patient_id FROM patients_sourceresource WHERE patient_id IS NOT NULL""",
]
DROP = [
    "DROP TRIGGER IF EXISTS patients_resources_changed_insert ON patients_sourceresource",
    "DROP TRIGGER IF EXISTS patients_resources_changed_update ON patients_sourceresource",
    "DROP TRIGGER IF EXISTS patients_resources_changed_delete ON patients_sourceresource",
    "DROP FUNCTION IF EXISTS patients_resources_changed()",
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
            name="SourceResourcesChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "source_patient",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="resource_changes",
                        to="patients.sourcepatient",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["source_patient", "id"], name="patients_srcres_changes")],
            },
        ),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
