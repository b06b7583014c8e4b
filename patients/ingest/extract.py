"""Indexed columns pulled out of normalized FHIR JSON, so views and search never scan JSON."""

from datetime import UTC, date, datetime
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

JSON = dict[str, Any]

# Where each resource type keeps its main code, in order of preference.
_CODE_ELEMENTS = ("code", "vaccineCode", "medicationCodeableConcept", "type", "category")
# Where each resource type keeps its clinically relevant time, in order of preference: when it happened
# (effective[x], occurrence[x], performed[x], onset[x], as a dateTime or the start of a period), then when it
# was ordered, recorded or written. A period is read as its start (its end when it has no start).
_TIME_ELEMENTS = (
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "occurrenceDateTime",
    "occurrencePeriod",
    "performedDateTime",
    "performedPeriod",
    "onsetDateTime",
    "onsetPeriod",
    "authoredOn",
    "recordedDate",
    "recorded",
    "issued",
    "created",
    "date",
    "period",
    "billablePeriod",
)
_PATIENT_ELEMENTS = ("subject", "patient", "beneficiary")


def _first_coding(value: Any) -> tuple[str, str]:
    concept = value[0] if isinstance(value, list) and value else value
    if not isinstance(concept, dict):
        return "", ""
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding.get("system") or "")[:200], str(coding["code"])[:100]
    return "", ""


def resource_code(resource: JSON) -> tuple[str, str]:
    for element in _CODE_ELEMENTS:
        if element in resource:
            system, code = _first_coding(resource[element])
            if code:
                return system, code
    return "", ""


def fhir_datetime(value: Any) -> datetime | None:
    """A FHIR dateTime as an aware datetime; partial dates (2020, 2020-05, 2020-05-17) start at midnight UTC."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) > 10:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
        return parsed if parsed is not None and parsed.tzinfo is not None else None
    padded = value + "-01-01"[len(value) - 4 :] if len(value) in (4, 7) else value
    day = _as_date(padded)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day is not None else None


def _as_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_date(value[:10])
    except ValueError:
        return None


def resource_effective_at(resource: JSON) -> datetime | None:
    for element in _TIME_ELEMENTS:
        value = resource.get(element)
        if element.endswith(("Period", "period")):
            found = (
                fhir_datetime(value.get("start")) or fhir_datetime(value.get("end"))
                if isinstance(value, dict)
                else None
            )
        else:
            found = fhir_datetime(value)
        if found is not None:
            return found
    return None


def resource_status(resource: JSON) -> str:
    status = resource.get("status")
    if isinstance(status, str):
        return status[:40]
    _, code = _first_coding(resource.get("clinicalStatus"))
    return code[:40]


def resource_identifiers(resource: JSON) -> list[tuple[str, str]]:
    """The (system, value) business identifiers of a resource, cut to the stored column sizes."""
    return [
        (str(identifier.get("system") or "")[:300], str(identifier["value"])[:300])
        for identifier in resource.get("identifier") or []
        if isinstance(identifier, dict) and identifier.get("value")
    ]


def resource_patient_id(resource: JSON) -> str:
    """The source id of the Patient a resource is about ("" when it is about no patient)."""
    for element in _PATIENT_ELEMENTS:
        target = resource.get(element)
        if isinstance(target, dict):
            reference = target.get("reference")
            if isinstance(reference, str) and reference.startswith("Patient/"):
                return reference.removeprefix("Patient/").split("/_history", 1)[0][:128]
    return ""


def _preferred(
    items: Any, *, key: str = "use", preferred: tuple[str, ...] = ("official", "usual")
) -> JSON | None:
    candidates = [item for item in items or [] if isinstance(item, dict)]
    for wanted in preferred:
        for item in candidates:
            if item.get(key) == wanted:
                return item
    return candidates[0] if candidates else None


def patient_columns(resource: JSON) -> JSON:
    """Demographic columns used for matching and search."""
    name = _preferred(resource.get("name")) or {}
    telecom = [item for item in resource.get("telecom") or [] if isinstance(item, dict)]
    phone = next(
        (str(t.get("value")) for t in telecom if t.get("system") in {"phone", "sms"} and t.get("value")), ""
    )
    email = next((str(t.get("value")) for t in telecom if t.get("system") == "email" and t.get("value")), "")
    address = _preferred(resource.get("address"), preferred=("home",)) or {}
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    return {
        "family_name": str(name.get("family") or "")[:200],
        "given_names": " ".join(str(given) for given in name.get("given") or [])[:200],
        "birth_date": _as_date(resource.get("birthDate"))
        if len(str(resource.get("birthDate") or "")) == 10
        else None,
        "gender": str(resource.get("gender") or "")[:10],
        "phone": phone[:20] if phone.startswith("+") else "",
        "email": email[:254],
        "postal_code": str(address.get("postalCode") or "")[:10],
        "is_active": resource.get("active", True) is not False,
        "source_updated_at": fhir_datetime(meta.get("lastUpdated")),
    }
