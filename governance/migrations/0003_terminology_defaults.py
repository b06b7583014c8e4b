from django.db import migrations


def defaults_load(apps, schema_editor):
    # The historical model, not the service: migrations must not depend on today's code paths.
    from governance.policies.terminology import default_map_entries

    TerminologyMap = apps.get_model("governance", "TerminologyMap")
    for entry in default_map_entries():
        TerminologyMap.objects.update_or_create(
            source=None,
            local_system=entry.local_system,
            local_code=entry.local_code,
            alias=entry.alias,
            defaults={
                "standard_system": entry.standard_system,
                "standard_code": entry.standard_code,
                "standard_display": entry.standard_display,
                "origin": "shipped",
            },
        )


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_terminology")]

    operations = [migrations.RunPython(defaults_load, migrations.RunPython.noop)]
