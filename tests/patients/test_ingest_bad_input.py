"""Bad input, each as a real file through the CLI: a clear reason, the raw payload kept, nothing half written."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from patients.models import InboundPayload, SourceIdentifier, SourcePatient, SourceResource
from tests.patients.conftest import as_bytes, blood_pressure, patient, transaction

MAPPING: dict[str, Any] = {
    "format": "concord.csv-mapping/1",
    "resource": "Patient",
    "fields": {
        "source_record_id": "CustomerID",
        "given": "FirstName",
        "family": "LastName",
        "birth_date": {"column": "DOB", "format": "%m/%d/%Y"},
        "sex": "Gender",
    },
    "phones": [{"column": "MobilePhone", "use": "mobile"}],
}
GOOD_CSV = "CustomerID,FirstName,LastName,DOB,Gender,MobilePhone\nC-1,Ana,Lopez,02/29/1988,F,617.555.0100\n"


# The CLI commits as it goes, so processing queued at commit runs as in the embedded default.
pytestmark = pytest.mark.django_db(transaction=True)


def ingest(tmp_path: Path, name: str, body: bytes, *extra: str, mapping: Any = None) -> dict[str, Any]:
    path = tmp_path / name
    path.write_bytes(body)
    arguments = ["ingest", "--source", "hospital-ehr", "--json", str(path), *extra]
    if mapping is not None:
        mapping_path = tmp_path / "mapping.json"
        mapping_path.write_text(mapping if isinstance(mapping, str) else json.dumps(mapping))
        arguments += ["--mapping", str(mapping_path)]
    from io import StringIO

    out = StringIO()
    call_command(*arguments, stdout=out, stderr=StringIO())
    summary: dict[str, Any] = json.loads(out.getvalue())
    return summary


def assert_quarantined_and_kept(summary: dict[str, Any], body: bytes, *, reason: str) -> InboundPayload:
    assert summary["payloads"] == {
        "received": 1,
        "accepted": 0,
        "duplicate": 0,
        "quarantined": 1,
        "pending": 0,
    }
    assert reason in summary["quarantined"][0]["reason"], summary["quarantined"][0]["reason"]
    payload = InboundPayload.objects.get()
    assert bytes(payload.body) == body
    assert payload.status == InboundPayload.Status.QUARANTINED
    assert SourcePatient.objects.count() == 0
    assert SourceResource.objects.count() == 0
    assert SourceIdentifier.objects.count() == 0
    return payload


INVALID_FHIR = [
    (
        "malformed.json",
        b'{"resourceType": "Patient", "id": "p1",, }',
        "line 1 column 40: malformed JSON: Expecting property name",
    ),
    ("not-fhir.json", b'{"patient": {"name": "x"}}', "this JSON is not FHIR"),
    ("empty.json", b"", "the payload is empty"),
    ("blank.json", b"  \n\n ", "the payload is empty"),
    ("truncated.json", as_bytes(transaction(patient("p-1")))[:150], "the file looks truncated"),
    (
        "wrong-type.json",
        as_bytes(patient("p-1", gender=7)),
        "gender: Input should be a valid string",
    ),
    (
        "missing-required.json",
        as_bytes({"resourceType": "Observation", "id": "o1", "status": "final"}),
        "code: Field required",
    ),
    ("bad-date.json", as_bytes(patient("p-1", birthDate="1961-13-45")), "birthDate: Value error"),
    (
        "number-as-url.json",
        as_bytes(patient("p-1", photo=[{"url": 12}])),
        "a value has a type FHIR does not allow there",
    ),
    (
        "unknown-type.json",
        as_bytes({"resourceType": "Spaceship", "id": "s1"}),
        "unknown FHIR R4 resource type 'Spaceship'",
    ),
    (
        "unresolved.json",
        as_bytes(transaction(patient("p-1"), blood_pressure("o-1", "urn:uuid:not-in-this-bundle"))),
        "Bundle.entry[1].resource.subject.reference: reference 'urn:uuid:not-in-this-bundle' does not resolve",
    ),
    (
        "invalid-entry-in-transaction.json",
        as_bytes(transaction(patient("p-1"), patient("p-2", birthDate="yesterday"))),
        "Bundle.entry[1].birthDate",
    ),
    (
        "bad-bundle-type.json",
        as_bytes({"resourceType": "Bundle", "type": "searchset", "entry": []}),
        "Bundle type 'searchset' is not accepted",
    ),
]


@pytest.mark.parametrize(("name", "body", "reason"), INVALID_FHIR, ids=[case[0] for case in INVALID_FHIR])
def test_invalid_fhir_file_is_quarantined_with_reason(
    tmp_path: Path, name: str, body: bytes, reason: str
) -> None:
    summary = ingest(tmp_path, name, body, "--format", "fhir")

    assert_quarantined_and_kept(summary, body, reason=reason)


def test_a_transaction_with_one_bad_entry_stores_none_of_it(tmp_path: Path) -> None:
    body = as_bytes(
        transaction(patient("p-1"), blood_pressure("o-1", "urn:uuid:p-1"), patient("p-2", gender=[1]))
    )

    summary = ingest(tmp_path, "bundle.json", body)

    payload = assert_quarantined_and_kept(summary, body, reason="Bundle.entry[2].gender")
    assert payload.problems[0]["location"] == "Bundle.entry[2].gender"


BAD_CSV = [
    (
        "missing-columns.csv",
        b"CustomerID,FirstName,LastName,Gender,MobilePhone\nC-1,Ana,Lopez,F,617.555.0100\n",
        MAPPING,
        "line 1: missing column(s) named in the mapping: DOB",
    ),
    (
        "unknown-columns.csv",
        b"CustomerID,FirstName,LastName,DOB,Gender,MobilePhone,Shoe size\nC-1,Ana,Lopez,02/29/1988,F,,38\n",
        MAPPING,
        "unknown column(s) Shoe size: map them or list them in ignore_columns",
    ),
    (
        "latin1.csv",
        GOOD_CSV.replace("Lopez", "L\u00f3pez").encode("latin-1"),
        MAPPING,
        "line 2: byte 62 is not valid utf-8",
    ),
    (
        "bad-date.csv",
        GOOD_CSV.replace("02/29/1988", "1988-02-29").encode(),
        MAPPING,
        "line 2, column DOB: value does not match date format %m/%d/%Y",
    ),
    ("empty.csv", b"", MAPPING, "the file is empty"),
    (
        "header-only.csv",
        GOOD_CSV.splitlines()[0].encode() + b"\n",
        MAPPING,
        "the file has a header but no rows",
    ),
    (
        "ragged.csv",
        GOOD_CSV.encode() + b"C-2,Bo,Chen,01/02/1990,M,,extra\n",
        MAPPING,
        "line 3: more fields than the 6 columns of the header",
    ),
    (
        "wrong-mapping.csv",
        GOOD_CSV.encode(),
        {**MAPPING, "format": "v0"},
        "mapping.format: must be 'concord.csv-mapping/1'",
    ),
    (
        "mapping-unknown-field.csv",
        GOOD_CSV.encode(),
        {**MAPPING, "fields": {**MAPPING["fields"], "shoe_size": "x"}},
        "mapping.fields: unknown field(s) shoe_size",
    ),
    ("mapping-not-json.csv", GOOD_CSV.encode(), "{not json", "the mapping file is not valid JSON (line 1)"),
    ("no-mapping.csv", GOOD_CSV.encode(), None, "no column mapping"),
]


@pytest.mark.parametrize(("name", "body", "mapping", "reason"), BAD_CSV, ids=[case[0] for case in BAD_CSV])
def test_invalid_csv_file_is_quarantined_with_reason(
    tmp_path: Path, name: str, body: bytes, mapping: Any, reason: str
) -> None:
    summary = ingest(tmp_path, name, body, mapping=mapping)

    assert_quarantined_and_kept(summary, body, reason=reason)


@override_settings(CONCORD_MAX_PAYLOAD_BYTES=1000)
def test_payload_over_the_size_limit_is_kept_but_not_parsed(tmp_path: Path) -> None:
    body = as_bytes(transaction(*[patient(f"p-{n}") for n in range(5)]))
    assert len(body) > 1000

    summary = ingest(tmp_path, "big.json", body)

    payload = assert_quarantined_and_kept(
        summary, body, reason=f"the payload is {len(body):,} bytes, over the limit of 1,000"
    )
    assert payload.attempts == 0


def test_problems_never_quote_csv_values(tmp_path: Path) -> None:
    body = GOOD_CSV.replace("02/29/1988", "Ana's birthday").encode()

    summary = ingest(tmp_path, "values.csv", body, mapping=MAPPING)

    assert "Ana" not in json.dumps(summary["quarantined"])
