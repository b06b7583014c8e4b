"""An EHR's record of a person as a FHIR R4 transaction Bundle, shaped like Synthea's output.

Plain JSON dicts: nothing here builds ``fhir.resources`` objects (that stays in ``patients.fhir``).
"""

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from patients.synthetic.people import LANGUAGE_BY_CODE, REFERENCE_DATE
from patients.synthetic.records import MRN_SYSTEMS, RecordView

JSON = dict[str, Any]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

_ENCOUNTER_TYPES = (
    ("185349003", "Encounter for check up (procedure)"),
    ("162673000", "General examination of patient (procedure)"),
    ("185345009", "Encounter for symptom (procedure)"),
)
# (SNOMED condition, display, RxNorm medication, display): codes as Synthea emits them.
_CONDITIONS_TREATED = (
    ("38341003", "Hypertension", "314076", "lisinopril 10 MG Oral Tablet"),
    (
        "44054006",
        "Diabetes mellitus type 2 (disorder)",
        "860975",
        "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    ),
    ("55822004", "Hyperlipidemia", "312961", "Simvastatin 20 MG Oral Tablet"),
    ("195967001", "Asthma", "745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    ("75498004", "Acute bacterial sinusitis (disorder)", "308192", "Amoxicillin 500 MG Oral Tablet"),
    (
        "43878008",
        "Streptococcal sore throat (disorder)",
        "834102",
        "Penicillin V Potassium 500 MG Oral Tablet",
    ),
    ("10509002", "Acute bronchitis (disorder)", "313782", "Acetaminophen 325 MG Oral Tablet"),
)


# Functions rather than constants: consumers rewrite bundles in place, so no two resources may share a dict.
def _vital_signs_category() -> list[JSON]:
    return [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "vital-signs",
                }
            ]
        }
    ]


def _medical_record_number_type() -> JSON:
    return {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": "MR",
                "display": "Medical Record Number",
            }
        ],
        "text": "Medical Record Number",
    }


def new_uuid(randomness: random.Random) -> str:
    return str(uuid.UUID(int=randomness.getrandbits(128), version=4))


def _entry(resource: JSON) -> JSON:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _reference(resource: JSON) -> JSON:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def patient_resource(view: RecordView, *, resource_id: str) -> JSON:
    name: JSON = {"use": "official", "family": view.family, "given": [view.given]}
    if view.middle:
        name["given"].append(view.middle)
    if view.suffix:
        name["suffix"] = [view.suffix]
    telecom = []
    if view.mobile_phone:
        telecom.append({"system": "phone", "value": view.formatted_mobile_phone, "use": "mobile"})
    if view.home_phone:
        telecom.append({"system": "phone", "value": view.formatted_home_phone, "use": "home"})
    if view.email:
        telecom.append({"system": "email", "value": view.email})
    language = LANGUAGE_BY_CODE[view.preferred_language]
    patient: JSON = {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [
            {
                "use": "usual",
                "type": _medical_record_number_type(),
                "system": MRN_SYSTEMS[view.source],
                "value": view.medical_record_number,
            }
        ],
        "active": True,
        "name": [name],
        **({"telecom": telecom} if telecom else {}),
        "gender": view.sex,
        "birthDate": view.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "line": view.address.lines,
                "city": view.address.city,
                "state": view.address.state,
                "postalCode": view.address.postal_code,
                "country": "US",
            }
        ],
        "communication": [
            {
                "language": {
                    "coding": [
                        {"system": "urn:ietf:bcp:47", "code": language.code, "display": language.display}
                    ],
                    "text": language.display,
                },
                "preferred": True,
            }
        ],
    }
    return patient


def _quantity(value: float, unit: str) -> JSON:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _observation(
    *, randomness: random.Random, code: str, display: str, patient: JSON, encounter: JSON, moment: datetime
) -> JSON:
    return {
        "resourceType": "Observation",
        "id": new_uuid(randomness),
        "status": "final",
        "category": _vital_signs_category(),
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": _reference(patient),
        "encounter": _reference(encounter),
        "effectiveDateTime": _instant(moment),
        "issued": _instant(moment),
    }


def _vital_signs(
    *, randomness: random.Random, patient: JSON, encounter: JSON, moment: datetime, weight: float
) -> list[JSON]:
    blood_pressure = _observation(
        randomness=randomness,
        code="85354-9",
        display="Blood pressure panel with all children optional",
        patient=patient,
        encounter=encounter,
        moment=moment,
    )
    blood_pressure["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic Blood Pressure"}]},
            "valueQuantity": _quantity(float(randomness.randint(100, 150)), "mm[Hg]"),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic Blood Pressure"}]},
            "valueQuantity": _quantity(float(randomness.randint(60, 95)), "mm[Hg]"),
        },
    ]
    heart_rate = _observation(
        randomness=randomness,
        code="8867-4",
        display="Heart rate",
        patient=patient,
        encounter=encounter,
        moment=moment,
    )
    heart_rate["valueQuantity"] = _quantity(float(randomness.randint(55, 100)), "/min")
    body_weight = _observation(
        randomness=randomness,
        code="29463-7",
        display="Body Weight",
        patient=patient,
        encounter=encounter,
        moment=moment,
    )
    body_weight["valueQuantity"] = _quantity(round(weight + randomness.uniform(-1.5, 1.5), 1), "kg")
    return [blood_pressure, heart_rate, body_weight]


def _typical_weight(*, birth_date: date, randomness: random.Random) -> float:
    age = (REFERENCE_DATE - birth_date).days / 365.25
    if age < 1:
        return 3.5 + age * 6
    if age < 18:
        return 9 + age * 3.2
    return randomness.uniform(52, 105)


def _encounter_moments(*, birth_date: date, count: int, randomness: random.Random) -> list[datetime]:
    earliest = max(birth_date + timedelta(days=1), REFERENCE_DATE - timedelta(days=5 * 365))
    span = max((REFERENCE_DATE - earliest).days, 1)
    days = sorted(randomness.sample(range(span), k=min(count, span)))
    return [
        datetime.combine(
            earliest + timedelta(days=day),
            time(randomness.randint(8, 17), randomness.choice((0, 15, 30, 45))),
            UTC,
        )
        for day in days
    ]


def patient_bundle(view: RecordView, *, patient_id: str, randomness: random.Random) -> JSON:
    """A transaction Bundle: the Patient, 1-3 Encounters with vital signs, a Condition and its medication."""
    patient = patient_resource(view, resource_id=patient_id)
    resources: list[JSON] = [patient]
    weight = _typical_weight(birth_date=view.birth_date, randomness=randomness)
    encounters = []
    for moment in _encounter_moments(
        birth_date=view.birth_date, count=randomness.randint(1, 3), randomness=randomness
    ):
        code, display = randomness.choice(_ENCOUNTER_TYPES)
        encounter = {
            "resourceType": "Encounter",
            "id": new_uuid(randomness),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display}],
            "subject": _reference(patient),
            "period": {"start": _instant(moment), "end": _instant(moment + timedelta(minutes=30))},
        }
        encounters.append((encounter, moment))
        resources.append(encounter)
        resources.extend(
            _vital_signs(
                randomness=randomness,
                patient=patient,
                encounter=encounter,
                moment=moment + timedelta(minutes=10),
                weight=weight,
            )
        )
    encounter, moment = encounters[0]
    condition_code, condition_display, medication_code, medication_display = randomness.choice(
        _CONDITIONS_TREATED
    )
    resources.append(
        {
            "resourceType": "Condition",
            "id": new_uuid(randomness),
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
            "code": {
                "coding": [{"system": SNOMED, "code": condition_code, "display": condition_display}],
                "text": condition_display,
            },
            "subject": _reference(patient),
            "encounter": _reference(encounter),
            "onsetDateTime": _instant(moment),
            "recordedDate": _instant(moment),
        }
    )
    resources.append(
        {
            "resourceType": "MedicationRequest",
            "id": new_uuid(randomness),
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": medication_code, "display": medication_display}],
                "text": medication_display,
            },
            "subject": _reference(patient),
            "encounter": _reference(encounter),
            "authoredOn": _instant(moment + timedelta(minutes=25)),
            "reasonReference": [_reference(resources[-1])],
        }
    )
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(resource) for resource in resources],
    }
