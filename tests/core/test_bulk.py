"""rows_update writes exactly the named fields, by array parameters (few rows) or by COPY (many)."""

import datetime

import pytest
from django.db import DataError, transaction

from core import bulk
from core.bulk import rows_update
from patients.models import Patient, PatientConflict

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture(params=["arrays", "copy"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "copy":
        monkeypatch.setattr(bulk, "ARRAY_ROWS", 0)
    return str(request.param)


def test_named_fields_are_written_and_others_left_alone(path: str) -> None:
    survivor = Patient.objects.create(family_name="Survivor")
    first = Patient.objects.create(family_name="Old", given_names="Kept", phone="+15550000001")
    second = Patient.objects.create(family_name="Older", birth_date=datetime.date(1970, 1, 1))
    first.family_name, first.birth_date, first.merged_into_id = (
        "Núñez",
        datetime.date(1980, 2, 29),
        survivor.pk,
    )
    first.given_names = "not written"
    second.family_name, second.birth_date, second.merged_into_id = 'O\'Brien "Jr"', None, None

    assert rows_update(Patient, [first, second], ["family_name", "birth_date", "merged_into"]) == 2

    first_row = Patient.objects.get(pk=first.pk)
    second_row = Patient.objects.get(pk=second.pk)
    assert (first_row.family_name, first_row.birth_date, first_row.merged_into_id) == (
        "Núñez",
        datetime.date(1980, 2, 29),
        survivor.pk,
    )
    assert (first_row.given_names, first_row.phone) == ("Kept", "+15550000001")
    assert (second_row.family_name, second_row.birth_date, second_row.merged_into_id) == (
        'O\'Brien "Jr"',
        None,
        None,
    )
    assert Patient.objects.get(pk=survivor.pk).family_name == "Survivor"


def test_json_values_round_trip(path: str) -> None:
    patient = Patient.objects.create()
    conflict = PatientConflict.objects.create(patient=patient, field="phone", values=[])
    values = [{"value": "+15550000001", "source": "crm", "nested": {"list": [1, 2.5, None, True]}}, "café"]
    conflict.values = values
    conflict.status = PatientConflict.Status.RESOLVED

    rows_update(PatientConflict, [conflict], ["values", "status"])

    stored = PatientConflict.objects.get(pk=conflict.pk)
    assert stored.values == values
    assert stored.status == PatientConflict.Status.RESOLVED


def test_a_value_too_long_for_its_column_fails_instead_of_being_cut(path: str) -> None:
    patient = Patient.objects.create(family_name="Short")
    patient.family_name = "x" * 201

    with pytest.raises(DataError), transaction.atomic():
        rows_update(Patient, [patient], ["family_name"])

    assert Patient.objects.get(pk=patient.pk).family_name == "Short"
