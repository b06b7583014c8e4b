"""Patient search finds a name within a typo of the query: PostgreSQL's fuzzystrmatch extension (its
``levenshtein_less_equal``), and the golden patients' given-name phonetic code taken from the first given
name, as search compares it, instead of from all of them ("Enzo Gabriel" was coded as one word).

fuzzystrmatch ships with PostgreSQL and is a trusted extension (13+): the database owner can create it.
"""

from django.contrib.postgres.operations import CreateExtension
from django.db import migrations

BATCH = 5000


def given_phonetic_recompute(apps, schema_editor):
    from patients.matching.features import given_phonetic

    Patient = apps.get_model("patients", "Patient")
    compound = Patient.objects.filter(given_names__contains=" ").order_by("pk")
    last = 0
    while True:
        batch = list(compound.filter(pk__gt=last).only("pk", "given_names", "given_phonetic")[:BATCH])
        if not batch:
            return
        changed = []
        for patient in batch:
            code = given_phonetic(patient.given_names)
            if code != patient.given_phonetic:
                patient.given_phonetic = code
                changed.append(patient)
        Patient.objects.bulk_update(changed, ["given_phonetic"], batch_size=1000)
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [("patients", "0009_payload_lz4")]

    operations = [
        CreateExtension("fuzzystrmatch"),
        migrations.RunPython(given_phonetic_recompute, migrations.RunPython.noop, elidable=True),
    ]
