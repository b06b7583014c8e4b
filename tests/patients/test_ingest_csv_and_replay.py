"""CSV exports through a column mapping, and replaying a quarantined payload after the fix."""

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from core.roles import CARE_COORDINATOR, DATA_STEWARD
from patients.models import InboundPayload, SourcePatient
from patients.synthetic import CRM_MAPPING

pytestmark = pytest.mark.django_db(transaction=True)

# The generator's CRM mapping: the format documented in the README, every field in use.
MAPPING: dict[str, Any] = CRM_MAPPING
HEADER = "CustomerID,FirstName,MiddleName,LastName,DOB,Gender,MobilePhone,HomePhone,Email,Address1,Address2,City,State,Zip,Language,HospitalMRN"
ROWS = [
    "CRM-001,WILLIAM,J,o'brien,07/04/1975,M,(617) 555-0101,,Bill.OBrien@Example.ORG,12 north main street,apartment 4,Boston,massachusetts,021081234,es,MRN-1",
    "CRM-002,Mary,,Smith Jr.,12/01/1990,F,,617.555.0102,,9 Oak Avenue,,Salem,MA,1970,en,",
]


def run(*arguments: str) -> dict[str, Any]:
    out = StringIO()
    call_command(*arguments, "--json", stdout=out, stderr=StringIO())
    summary: dict[str, Any] = json.loads(out.getvalue())
    return summary


@pytest.fixture
def crm_export(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = tmp_path / "crm-patients.csv"
    csv_path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    mapping_path = tmp_path / "mapping.json"
    mapping_path.write_text(json.dumps(MAPPING))
    return csv_path, mapping_path


def test_csv_rows_become_normalized_patients(crm_export: tuple[Path, Path]) -> None:
    csv_path, mapping_path = crm_export

    summary = run("ingest", "--source", "crm", "--mapping", str(mapping_path), str(csv_path))

    assert summary["payloads"]["accepted"] == 1
    assert summary["resources_stored"] == {"Patient": 2}
    bill = SourcePatient.objects.get(source__slug="crm", source_record_id="CRM-001")
    assert (bill.given_names, bill.family_name, str(bill.birth_date), bill.gender) == (
        "William J",
        "O'Brien",
        "1975-07-04",
        "male",
    )
    assert bill.phone == "+16175550101"
    assert bill.email == "bill.obrien@example.org"
    assert bill.postal_code == "02108-1234"
    address = bill.resource["address"][0]
    assert address["line"] == ["12 N Main St", "Apt 4"]
    assert address["state"] == "MA"
    assert bill.resource["communication"][0]["language"]["coding"][0]["code"] == "es"
    assert {"system": "urn:oid:2.16.840.1.113883.3.1001.1", "value": "MRN-1"} in [
        {key: identifier[key] for key in ("system", "value")} for identifier in bill.resource["identifier"]
    ]
    mary = SourcePatient.objects.get(source_record_id="CRM-002")
    assert mary.resource["name"][0]["suffix"] == ["Jr"]
    assert mary.family_name == "Smith"
    assert mary.postal_code == "01970"
    assert mary.resource["telecom"] == [
        {
            "system": "phone",
            "value": "+16175550102",
            "use": "home",
            "_value": {
                "extension": [
                    {
                        "url": "https://concord.example.org/fhir/StructureDefinition/original-value",
                        "valueString": "617.555.0102",
                    }
                ]
            },
        }
    ]


def test_the_same_export_twice_is_a_duplicate(crm_export: tuple[Path, Path]) -> None:
    csv_path, mapping_path = crm_export
    run("ingest", "--source", "crm", "--mapping", str(mapping_path), str(csv_path))

    again = run("ingest", "--source", "crm", "--mapping", str(mapping_path), str(csv_path))

    assert again["payloads"] == {"received": 1, "accepted": 0, "duplicate": 1, "quarantined": 0, "pending": 0}
    assert again["resources_stored"] == {}
    assert SourcePatient.objects.count() == 2


def test_replay_from_the_cli_with_a_corrected_mapping(crm_export: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, mapping_path = crm_export
    broken = {
        **MAPPING,
        "fields": {**MAPPING["fields"], "birth_date": {"column": "DOB", "format": "%Y-%m-%d"}},
    }
    broken_path = tmp_path / "broken.json"
    broken_path.write_text(json.dumps(broken))
    first = run("ingest", "--source", "crm", "--mapping", str(broken_path), str(csv_path))
    assert first["payloads"]["quarantined"] == 1
    assert (
        first["quarantined"][0]["reason"] == "line 2, column DOB: value does not match date format %Y-%m-%d"
    )

    out = StringIO()
    call_command("replay_payloads", "--all", "--source", "crm", "--mapping", str(mapping_path), stdout=out)

    assert "Replayed: 1 accepted, 0 still quarantined." in out.getvalue()
    payload = InboundPayload.objects.get()
    assert payload.status == InboundPayload.Status.ACCEPTED
    assert payload.attempts == 2
    assert payload.options["csv_mapping"] == MAPPING
    assert SourcePatient.objects.count() == 2


def test_replay_from_the_ui_by_a_steward(
    crm_export: tuple[Path, Path], role_users: dict[str, User], tmp_path: Path
) -> None:
    csv_path, _ = crm_export
    run("ingest", "--source", "crm", str(csv_path))  # no mapping yet: quarantined
    payload = InboundPayload.objects.get()
    assert payload.error == "mapping: no column mapping: give one with --mapping or in the source's settings"
    from patients.models import Source

    Source.objects.filter(slug="crm").update(connector_settings={"csv_mapping": MAPPING})
    replay_url = f"/patients/payloads/{payload.external_id}/replay/"

    coordinator = Client()
    coordinator.force_login(role_users[CARE_COORDINATOR])
    assert coordinator.post(replay_url).status_code == 403
    assert InboundPayload.objects.get().status == InboundPayload.Status.QUARANTINED
    assert Client().post(replay_url).status_code == 302  # anonymous: to login
    assert InboundPayload.objects.get().status == InboundPayload.Status.QUARANTINED

    steward = Client()
    steward.force_login(role_users[DATA_STEWARD])
    response = steward.post(replay_url, follow=True)

    assert response.status_code == 200
    assert b"Replayed: the payload was accepted." in response.content
    assert InboundPayload.objects.get().status == InboundPayload.Status.ACCEPTED
    assert SourcePatient.objects.count() == 2
    from auditlog.models import LogEntry

    entry = LogEntry.objects.get_for_object(InboundPayload.objects.get()).filter(actor__isnull=False).first()
    assert entry is not None
    assert entry.actor == role_users[DATA_STEWARD]
