"""The ingest command: files and directories, format detection, unknown sources, summary and progress."""

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from patients.management.commands.ingest import format_detect
from patients.models import Source, SourcePatient, SourceResource
from tests.patients.conftest import as_bytes, patient, transaction

pytestmark = pytest.mark.django_db(transaction=True)


def run(*arguments: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ingest", *arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.json", b"", "fhir"),
        ("a.CSV", b"", "csv"),
        ("a.hl7", b"", "hl7v2"),
        ("export", b'\xef\xbb\xbf  {"resourceType"', "fhir"),
        ("message.txt", b"MSH|^~\\&|", "hl7v2"),
        ("batch.dat", b"FHS|^~\\&|", "hl7v2"),
        ("people.txt", b"id,name\n", "csv"),
    ],
)
def test_format_detection(name: str, head: bytes, expected: str) -> None:
    assert format_detect(Path(name), head) == expected


def test_directories_are_recursed_and_summarized(tmp_path: Path) -> None:
    (tmp_path / "2024" / "03").mkdir(parents=True)
    (tmp_path / "a.json").write_bytes(as_bytes(transaction(patient("p-1"))))
    (tmp_path / "2024" / "03" / "b.json").write_bytes(as_bytes(patient("p-2")))
    (tmp_path / "2024" / "broken.json").write_bytes(b"{")
    (tmp_path / ".hidden.json").write_bytes(b"ignored")

    out, err = run("--source", "clinic-ehr", str(tmp_path))

    assert "Source 'clinic-ehr' was unknown: created it with kind 'other'." in err
    assert Source.objects.get(slug="clinic-ehr").kind == Source.Kind.OTHER
    assert "3 payloads received, 2 accepted, 0 duplicate, 1 quarantined" in out
    assert "  Patient                             2" in out
    assert "Quarantined " in out
    assert "broken.json: line 1 column 2: malformed JSON" in out


def test_json_summary_is_one_object(tmp_path: Path) -> None:
    Source.objects.create(slug="ehr", name="EHR", kind=Source.Kind.EHR)
    path = tmp_path / "bundle.json"
    path.write_bytes(as_bytes(transaction(patient("p-1"), patient("p-2"))))

    out, err = run("--source", "ehr", "--json", str(path))

    summary: dict[str, Any] = json.loads(out)
    assert err == ""
    assert summary["source"] == "ehr"
    assert summary["source_created"] is False
    assert summary["payloads"] == {
        "received": 1,
        "accepted": 1,
        "duplicate": 0,
        "quarantined": 0,
        "pending": 0,
    }
    assert summary["resources_stored"] == {"Patient": 2}
    assert summary["resources_stored_total"] == 2
    assert summary["quarantined"] == []


def test_a_long_run_shows_a_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for number in range(25):
        (tmp_path / f"p{number:02}.json").write_bytes(as_bytes(patient(f"p-{number}")))

    call_command("ingest", "--source", "ehr", "--json", str(tmp_path), stdout=StringIO(), stderr=StringIO())

    progress = capsys.readouterr().err
    assert "landing [##############################] 25/25" in progress
    assert "landing [###......" in progress


def test_hl7v2_files_are_mapped_and_stored(tmp_path: Path) -> None:
    path = tmp_path / "adt.hl7"
    path.write_bytes(
        b"MSH|^~\\&|EPIC|HOSP|||202401011200||ADT^A01|1|P|2.5\r"
        b"EVN|A01|202401011200\r"
        b"PID|1||MRN-1^^^HOSP^MR||Testpatient^Alex||19800101|F\r"
        b"PV1|1|I|WARD^101^A||||||||||||||||VISIT-1^^^HOSP^VN|||||||||||||||||||||||||202401011130\r"
    )

    out, _ = run("--source", "ehr", "--json", str(path))

    summary = json.loads(out)
    assert summary["payloads"]["accepted"] == 1
    assert summary["payloads"]["quarantined"] == 0
    assert SourcePatient.objects.filter(source__slug="ehr").count() == 1
    resources = SourceResource.objects.filter(source__slug="ehr")
    assert sorted(resources.values_list("resource_type", flat=True)) == ["Encounter", "Location"]


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or directory"):
        run("--source", "ehr", str(tmp_path / "nope.json"))


def test_a_reference_to_a_later_file_resolves_at_the_end_of_the_run(tmp_path: Path) -> None:
    practitioner = {
        "resourceType": "Practitioner",
        "id": "dr-1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "123"}],
    }
    encounter = {
        "resourceType": "Encounter",
        "id": "e-1",
        "status": "finished",
        "class": {"code": "AMB"},
        "participant": [
            {"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|123"}}
        ],
    }
    (tmp_path / "a-encounter.json").write_bytes(as_bytes(encounter))
    (tmp_path / "b-practitioner.json").write_bytes(as_bytes(practitioner))

    out, _ = run("--source", "ehr", "--json", str(tmp_path))

    assert json.loads(out)["payloads"]["accepted"] == 2


def test_only_processing_reads_a_stored_body_back(tmp_path: Path) -> None:
    """The run's summary needs the outcomes only, and a repeat is recognized by its digest: the one read
    of a body is the processing of a new payload (eager here)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    folder = tmp_path / "bundles"
    folder.mkdir()
    for index in range(2):
        (folder / f"p{index}.json").write_text(
            json.dumps({"resourceType": "Patient", "id": f"p{index}", "name": [{"family": f"Body{index}"}]})
        )
    for run, expected_reads in enumerate((2, 0)):  # the second run: every file a repeat
        with CaptureQueriesContext(connection) as queries:
            call_command("ingest", "--source", "bodies", str(folder), stdout=StringIO(), stderr=StringIO())
        body_reads = [
            query["sql"]
            for query in queries
            if query["sql"].startswith("SELECT") and '"patients_inboundpayload"."body"' in query["sql"]
        ]
        assert len(body_reads) == expected_reads, (run, body_reads)
