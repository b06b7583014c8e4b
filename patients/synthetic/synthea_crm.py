"""A CRM export for Synthea's patients, disagreeing with them the way the generator's CRM does.

Synthea's patient bundles play the hospital EHR as they are. Each Patient becomes a ``Person`` and,
for about ``share`` of them, a CRM row drawn through the generator's own life events and record
damage; ``truth.csv`` ties every row to the Synthea Patient id it belongs to.
"""

import json
import random
from datetime import date
from pathlib import Path
from typing import Any

from patients.normalize import US_STATES
from patients.synthetic.csv_export import crm_export_write, crm_row
from patients.synthetic.disagreements import apply_person_events, apply_record_damage
from patients.synthetic.people import Address, Person, PersonMaker
from patients.synthetic.population import (
    CRM_KNOWS_HOSPITAL_MRN_RATE,
    CRM_PRESENCE_RATE,
    TruthRow,
    truth_write,
)
from patients.synthetic.records import CRM, HOSPITAL_EHR, MRN_SYSTEMS, RecordView
from patients.synthetic.synthea import is_shared_bundle

JSON = dict[str, Any]


def _patient(bundle: JSON) -> JSON | None:
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            return resource
    return None


def _name_part(value: str) -> str:
    # Synthea appends digits to every name part ("Jacinto644") to keep its names apart.
    return value.rstrip("0123456789")


def _phone_digits(value: str) -> str:
    digits = "".join(character for character in value if character.isdigit())
    # The generator's phones are ten digits; anything else cannot be rendered in a source's style.
    return digits if len(digits) == 10 else ""


def _preferred_language(patient: JSON) -> str:
    communications = patient.get("communication") or []
    for communication in [item for item in communications if item.get("preferred")] or communications[:1]:
        language = communication.get("language") or {}
        for coding in language.get("coding") or ():
            if coding.get("code"):
                return str(coding["code"])
        if language.get("text"):
            return str(language["text"])
    return "en"


def _medical_record_identifier(patient: JSON) -> tuple[str, str]:
    """(system, value) of the Patient's MRN, or ("", "")."""
    for identifier in patient.get("identifier") or ():
        if any(coding.get("code") == "MR" for coding in (identifier.get("type") or {}).get("coding") or ()):
            return str(identifier.get("system", "")), str(identifier.get("value", ""))
    return "", ""


def _medical_record_number(patient: JSON) -> str:
    return _medical_record_identifier(patient)[1]


def _person(patient: JSON) -> Person:
    names = patient.get("name") or [{}]
    name = next((name for name in names if name.get("use") == "official"), names[0])
    given = [_name_part(part) for part in name.get("given") or ()]
    telecom = patient.get("telecom") or []
    phones = [point for point in telecom if point.get("system") == "phone"]
    address = (patient.get("address") or [{}])[0]
    lines = address.get("line") or []
    state = str(address.get("state", ""))
    sex = str(patient.get("gender", ""))
    return Person(
        person_id=str(patient["id"]),
        given=given[0] if given else "",
        middle=" ".join(given[1:]),
        family=_name_part(str(name.get("family", ""))),
        birth_date=date.fromisoformat(patient["birthDate"]),
        sex=sex if sex in {"female", "male"} else "unknown",
        # Synthea gives each patient one phone; it is taken as the phone the patient carries, so that
        # the generator's "new phone, known only to the CRM" event can happen to these patients too.
        mobile_phone=next((_phone_digits(point["value"]) for point in phones), ""),
        home_phone="",
        email=next((str(point["value"]) for point in telecom if point.get("system") == "email"), ""),
        address=Address(
            line1=lines[0] if lines else "",
            line2=", ".join(lines[1:]),
            city=str(address.get("city", "")),
            # Two-letter codes, as the generator's people have (and its moved addresses need).
            state=US_STATES.get(state.lower(), state),
            postal_code=str(address.get("postalCode", "")),
        ),
        preferred_language=_preferred_language(patient),
        medical_record_numbers={HOSPITAL_EHR: _medical_record_number(patient)},
    )


def write_synthea_crm_export(
    synthea_dir: Path, out_dir: Path, *, seed: int = 0, share: float = CRM_PRESENCE_RATE
) -> dict[str, int]:
    """Write ``crm/patients.csv``, ``crm/mapping.json`` and ``truth.csv`` for Synthea's patients; return counts.

    Truth has a ``hospital-ehr`` row per Synthea Patient (its id, no disagreements) and a ``crm`` row
    per CRM record, both with the Synthea Patient id as person id. The same inputs and seed give the
    same bytes, so that the demo loader recognizes a second ingest of the files as a duplicate.
    """
    if not 0 <= share <= 1:
        raise ValueError("share must be between 0 and 1")
    people = []
    mrn_system = ""
    for path in sorted(synthea_dir.glob("*.json")):
        patient = None if is_shared_bundle(path) else _patient(json.loads(path.read_bytes()))
        if patient is not None:
            people.append(_person(patient))
            mrn_system = mrn_system or _medical_record_identifier(patient)[0]
    maker = PersonMaker(seed=seed)
    randomness = random.Random(f"concord-synthea-crm:{seed}")
    transposition_randomness = random.Random(f"concord-synthea-crm:{seed}:transpositions")
    customer_numbers = iter(randomness.sample(range(1_000_000, 10_000_000), k=len(people)))
    rows: list[dict[str, str]] = []
    truth = [
        TruthRow(
            source=HOSPITAL_EHR,
            source_record_id=person.person_id,
            person_id=person.person_id,
            disagreements=(),
        )
        for person in people
    ]
    for person in people:
        if randomness.random() >= share:
            continue
        # The hospital view takes part so that the events see a person known to two sources (a married
        # name needs that); its record stays Synthea's bundle, so whatever they draw for it is dropped.
        views = {
            HOSPITAL_EHR: RecordView.of(person, source=HOSPITAL_EHR, source_record_id=person.person_id),
            CRM: RecordView.of(person, source=CRM, source_record_id=str(next(customer_numbers))),
        }
        crm = views[CRM]
        if randomness.random() < CRM_KNOWS_HOSPITAL_MRN_RATE:
            crm.known_hospital_mrn = person.medical_record_numbers[HOSPITAL_EHR]
        apply_person_events(person, views=views, randomness=randomness, maker=maker)
        apply_record_damage(crm, randomness=randomness, transposition_randomness=transposition_randomness)
        rows.append(crm_row(crm))
        truth.append(
            TruthRow(
                source=CRM,
                source_record_id=crm.source_record_id,
                person_id=person.person_id,
                disagreements=tuple(str(kind) for kind in crm.disagreements),
            )
        )
    # Sorted by id, as the generator's are, so that the order says nothing about who is who.
    rows.sort(key=lambda row: row["CustomerID"])
    truth.sort(key=lambda row: (row.source, row.source_record_id))
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "patients": len(people),
        # The CRM copies the hospital's MRNs, so its mapping names the hospital's MRN system.
        CRM: crm_export_write(
            rows, directory=out_dir / CRM, hospital_mrn_system=mrn_system or MRN_SYSTEMS[HOSPITAL_EHR]
        ),
        "truth": truth_write(truth, path=out_dir / "truth.csv"),
    }
