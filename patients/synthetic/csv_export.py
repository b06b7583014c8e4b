"""The CRM's record of a person: one row of a CSV export, plus the column mapping an importer reads.

The CRM has no suffix column: where it keeps a "Jr" at all, it is typed after the last name
("Smith Jr"), where the importer's name normalization finds it and moves it to the FHIR suffix.
"""

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from patients.synthetic.records import HOSPITAL_EHR, MRN_SYSTEMS, RecordView

CRM_COLUMNS = (
    "CustomerID",
    "FirstName",
    "MiddleName",
    "LastName",
    "DOB",
    "Gender",
    "MobilePhone",
    "HomePhone",
    "Email",
    "Address1",
    "Address2",
    "City",
    "State",
    "Zip",
    "Language",
    "HospitalMRN",
)

CRM_BIRTH_DATE_FORMAT = "%m/%d/%Y"

# The contract with the CSV importer ("concord.csv-mapping/1"); change both sides together.
CRM_MAPPING: dict[str, Any] = {
    "format": "concord.csv-mapping/1",
    "resource": "Patient",
    "delimiter": ",",
    "encoding": "utf-8",
    "fields": {
        "source_record_id": "CustomerID",
        "given": "FirstName",
        "middle": "MiddleName",
        "family": "LastName",
        "birth_date": {"column": "DOB", "format": CRM_BIRTH_DATE_FORMAT},
        "sex": "Gender",
        "email": "Email",
        "address_lines": ["Address1", "Address2"],
        "city": "City",
        "state": "State",
        "postal_code": "Zip",
        "preferred_language": "Language",
    },
    "phones": [{"column": "MobilePhone", "use": "mobile"}, {"column": "HomePhone", "use": "home"}],
    "identifiers": [{"column": "HospitalMRN", "system": MRN_SYSTEMS[HOSPITAL_EHR], "type": "MR"}],
}

_GENDER_CODES = {"female": "F", "male": "M", "unknown": "U"}


def crm_row(view: RecordView) -> dict[str, str]:
    return {
        "CustomerID": view.source_record_id,
        "FirstName": view.given,
        "MiddleName": view.middle,
        "LastName": " ".join(part for part in (view.family, view.suffix) if part),
        "DOB": view.birth_date.strftime(CRM_BIRTH_DATE_FORMAT),
        "Gender": _GENDER_CODES[view.sex],
        "MobilePhone": view.formatted_mobile_phone,
        "HomePhone": view.formatted_home_phone,
        "Email": view.email,
        "Address1": view.address.line1,
        "Address2": view.address.line2,
        "City": view.address.city,
        "State": view.address.state,
        "Zip": view.address.postal_code,
        "Language": view.preferred_language,
        "HospitalMRN": view.known_hospital_mrn,
    }


def crm_export_write(
    rows: Iterable[dict[str, str]], *, directory: Path, hospital_mrn_system: str = MRN_SYSTEMS[HOSPITAL_EHR]
) -> int:
    """Write ``patients.csv`` and ``mapping.json`` into ``directory``; return the number of rows.

    ``hospital_mrn_system`` is the identifier system of the MRNs in the HospitalMRN column.
    """
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with (directory / "patients.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CRM_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    mapping = {
        **CRM_MAPPING,
        "identifiers": [
            {**identifier, "system": hospital_mrn_system} for identifier in CRM_MAPPING["identifiers"]
        ],
    }
    (directory / "mapping.json").write_text(json.dumps(mapping, indent=2) + "\n", encoding="utf-8")
    return count
