"""A CRM export for Synthea's patients: demographics carried over, disagreements, ground truth, importer."""

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from patients.ingest.csv_input import csv_payload_parse
from patients.synthetic import CRM, CRM_MAPPING, HOSPITAL_EHR, read_truth, write_synthea_crm_export

JSON = dict[str, Any]

SYNTHEA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "synthea-r4"
WRITTEN_FILES = ("crm/patients.csv", "crm/mapping.json", "truth.csv")
PATIENT_ID = "b2f1c0de-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def synthea_dir() -> Path:
    if not SYNTHEA_DIR.is_dir():
        pytest.skip(f"shared Synthea data is absent ({SYNTHEA_DIR}); CI always has it")
    return SYNTHEA_DIR


@pytest.fixture(scope="module")
def export(synthea_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out_dir = tmp_path_factory.mktemp("synthea-crm")
    return out_dir, write_synthea_crm_export(synthea_dir, out_dir, seed=0)


@pytest.fixture(scope="module")
def synthea_patients(synthea_dir: Path) -> dict[str, JSON]:
    patients = {}
    for path in synthea_dir.glob("*.json"):
        if path.name.startswith(("hospitalInformation", "practitionerInformation")):
            continue
        bundle = json.loads(path.read_bytes())
        patient = next(
            entry["resource"] for entry in bundle["entry"] if entry["resource"]["resourceType"] == "Patient"
        )
        patients[patient["id"]] = patient
    return patients


def _crm_rows(out_dir: Path) -> list[dict[str, str]]:
    with (out_dir / CRM / "patients.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _medical_record_number(patient: JSON) -> str:
    return next(
        identifier["value"]
        for identifier in patient["identifier"]
        if identifier.get("type", {}).get("coding", [{}])[0].get("code") == "MR"
    )


def _synthea_like_patient() -> JSON:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "identifier": [
            {"system": "https://github.com/synthetichealth/synthea", "value": PATIENT_ID},
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                },
                "system": "http://hospital.smarthealthit.org",
                "value": "mrn-0001",
            },
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]
                },
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": "999-00-0001",
            },
        ],
        "name": [
            {"use": "official", "family": "Example467", "given": ["Jacinto644", "Rey12"], "prefix": ["Mr."]}
        ],
        "telecom": [{"system": "phone", "value": "555-327-0134", "use": "home"}],
        "gender": "male",
        "birthDate": "1980-03-21",
        "address": [
            {
                "line": ["12 Example Street"],
                "city": "Boston",
                "state": "Massachusetts",
                "postalCode": "02101",
                "country": "US",
            }
        ],
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}], "text": "Spanish"}}
        ],
    }


def test_a_synthea_patient_becomes_a_crm_row_without_synthea_digits(tmp_path: Path) -> None:
    synthea_dir = tmp_path / "synthea"
    synthea_dir.mkdir()
    patient_bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": _synthea_like_patient()}],
    }
    (synthea_dir / "Jacinto_Example_1.json").write_text(json.dumps(patient_bundle), encoding="utf-8")
    # Shared bundles are not patients: this one would fail to convert (no birth date) if it were read.
    shared_bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Patient", "id": "shared"}}],
    }
    (synthea_dir / "hospitalInformation1.json").write_text(json.dumps(shared_bundle), encoding="utf-8")

    counts = write_synthea_crm_export(synthea_dir, tmp_path / "out", seed=0, share=1.0)

    assert counts == {"patients": 1, "crm": 1, "truth": 2}
    # Seed 0 draws no disagreement for this record, so the row is the patient's truth in CRM style.
    assert _crm_rows(tmp_path / "out") == [
        {
            "CustomerID": "3271585",
            "FirstName": "Jacinto",
            "MiddleName": "Rey",
            "LastName": "Example",
            "DOB": "03/21/1980",
            "Gender": "M",
            "MobilePhone": "555.327.0134",
            "HomePhone": "",
            "Email": "",
            "Address1": "12 Example Street",
            "Address2": "",
            "City": "Boston",
            "State": "MA",
            "Zip": "02101",
            "Language": "es",
            "HospitalMRN": "mrn-0001",
        }
    ]
    truth = read_truth(tmp_path / "out" / "truth.csv")
    assert [(row.source, row.source_record_id, row.person_id, row.disagreements) for row in truth] == [
        (CRM, "3271585", PATIENT_ID, ()),
        (HOSPITAL_EHR, PATIENT_ID, PATIENT_ID, ()),
    ]


def test_a_share_outside_zero_to_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="share must be between 0 and 1"):
        write_synthea_crm_export(tmp_path, tmp_path / "out", share=1.5)


def test_counts_for_seed_0(export: tuple[Path, dict[str, int]]) -> None:
    _, counts = export
    # 67 of Synthea's 85 patients (80%) have a CRM record; truth has all 85 hospital records too.
    assert counts == {"patients": 85, "crm": 67, "truth": 152}


def test_a_second_run_writes_identical_bytes(
    export: tuple[Path, dict[str, int]], synthea_dir: Path, tmp_path: Path
) -> None:
    first_dir, first_counts = export

    second_counts = write_synthea_crm_export(synthea_dir, tmp_path, seed=0)

    assert second_counts == first_counts
    for name in WRITTEN_FILES:
        assert (tmp_path / name).read_bytes() == (first_dir / name).read_bytes(), name


def test_truth_ties_every_crm_row_to_one_synthea_patient(
    export: tuple[Path, dict[str, int]], synthea_patients: dict[str, JSON]
) -> None:
    out_dir, _ = export
    truth = read_truth(out_dir / "truth.csv")
    hospital_rows = [row for row in truth if row.source == HOSPITAL_EHR]
    crm_rows = [row for row in truth if row.source == CRM]

    assert [(row.source_record_id, row.person_id, row.disagreements) for row in hospital_rows] == [
        (patient_id, patient_id, ()) for patient_id in sorted(synthea_patients)
    ]
    assert [row.source_record_id for row in crm_rows] == [row["CustomerID"] for row in _crm_rows(out_dir)]
    crm_person_ids = [row.person_id for row in crm_rows]
    assert set(crm_person_ids) <= set(synthea_patients)
    assert len(set(crm_person_ids)) == len(crm_person_ids) == 67


def test_the_crm_knows_the_synthea_mrn_of_its_own_patient_only(
    export: tuple[Path, dict[str, int]], synthea_patients: dict[str, JSON]
) -> None:
    out_dir, _ = export
    person_of_customer = {
        row.source_record_id: row.person_id for row in read_truth(out_dir / "truth.csv") if row.source == CRM
    }
    known = {row["CustomerID"]: row["HospitalMRN"] for row in _crm_rows(out_dir) if row["HospitalMRN"]}

    assert len(known) == 29
    assert known == {
        customer_id: _medical_record_number(synthea_patients[person_of_customer[customer_id]])
        for customer_id in known
    }


def test_the_crm_disagrees_through_the_generator_machinery(export: tuple[Path, dict[str, int]]) -> None:
    out_dir, _ = export
    kinds = Counter(
        kind for row in read_truth(out_dir / "truth.csv") if row.source == CRM for kind in row.disagreements
    )

    assert kinds == {
        "phone_format": 16,
        "new_phone": 10,
        "moved_address": 8,
        "typo": 5,
        "missing_phone": 3,
        "married_name": 2,
        "diacritics_removed": 1,
        "upper_case_name": 1,
    }


def test_the_export_parses_with_the_csv_importer(export: tuple[Path, dict[str, int]]) -> None:
    out_dir, _ = export
    mapping = json.loads((out_dir / CRM / "mapping.json").read_text(encoding="utf-8"))

    # Raises PayloadRejected, with its problems, if any row or column is wrong.
    parsed = csv_payload_parse(
        (out_dir / CRM / "patients.csv").read_bytes(), mapping=mapping, source_slug=CRM
    )

    # The generator's mapping, naming the MRN system Synthea's hospital uses, so identifiers can link.
    assert mapping == {
        **CRM_MAPPING,
        "identifiers": [
            {"column": "HospitalMRN", "system": "http://hospital.smarthealthit.org", "type": "MR"}
        ],
    }
    assert [entry.source_id for entry in parsed.entries] == [row["CustomerID"] for row in _crm_rows(out_dir)]
    assert len(parsed.entries) == 67
