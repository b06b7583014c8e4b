"""The golden record: survivorship over every source record linked to a patient, with provenance.

Recomputed whenever a linked record changes or links move. Each field keeps where its value came from
(source, source record, when, and the rule that chose it); disagreements between trusted sources on key
attributes become ``PatientConflict`` rows, opened and resolved here as the data changes.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.db.models import F
from django.utils import timezone

from core.bulk import rows_update
from governance.policies.survivorship import CandidateValue, conflicting_values, trust_rank, value_choose
from patients.matching.features import ascii_fold, given_phonetic, phonetic
from patients.models import Patient, PatientConflict, Source, SourcePatient

JSON = dict[str, Any]
VERIFIED_EXTENSION = "https://concord.health/fhir/StructureDefinition/verified"


def _is_verified(element: JSON) -> bool:
    return any(
        extension.get("url") == VERIFIED_EXTENSION and extension.get("valueBoolean") is True
        for extension in element.get("extension") or []
        if isinstance(extension, dict)
    )


def _dicts(value: Any) -> list[JSON]:
    return [item for item in value or [] if isinstance(item, dict)]


def _current(items: list[JSON], preferred: tuple[str, ...]) -> JSON | None:
    usable = [
        item for item in items if item.get("use") != "old" and not (item.get("period") or {}).get("end")
    ]
    for wanted in preferred:
        for item in usable:
            if item.get("use") == wanted:
                return item
    return usable[0] if usable else None


def _fold(text: str) -> str:
    return " ".join(ascii_fold(text).split())


def _field_values(resource: JSON) -> dict[str, tuple[Any, str, bool, int]]:
    """Field -> (value, comparable form, verified, completeness) as this record states it."""
    found: dict[str, tuple[Any, str, bool, int]] = {}
    name = _current(_dicts(resource.get("name")), ("official", "usual"))
    if name and (name.get("family") or name.get("given")):
        value = {key: name[key] for key in ("family", "given", "prefix", "suffix") if name.get(key)}
        given = name.get("given") or []
        comparable = _fold(f"{name.get('family', '')}|{given[0] if given else ''}")
        found["name"] = (value, comparable, _is_verified(name), len(given) + bool(name.get("family")))
    birth_date = resource.get("birthDate")
    if isinstance(birth_date, str) and birth_date:
        found["birth_date"] = (birth_date, birth_date, False, len(birth_date))
    gender = resource.get("gender")
    if gender in {"male", "female", "other"}:
        found["gender"] = (gender, gender, False, 1)
    if "deceasedDateTime" in resource or "deceasedBoolean" in resource:
        deceased = resource.get("deceasedDateTime", resource.get("deceasedBoolean"))
        found["deceased"] = (deceased, str(deceased), False, 1)
    telecom = _dicts(resource.get("telecom"))
    for field_name, systems in (("phone", {"phone", "sms"}), ("email", {"email"})):
        points = [point for point in telecom if point.get("system") in systems and point.get("value")]
        point = _current(points, ("mobile", "home", "work"))
        if point:
            value = {key: point[key] for key in ("system", "value", "use") if point.get(key)}
            found[field_name] = (value, str(point["value"]).lower(), _is_verified(point), len(value))
    address = _current(_dicts(resource.get("address")), ("home",))
    if address and (address.get("line") or address.get("postalCode") or address.get("city")):
        value = {
            key: address[key]
            for key in ("use", "line", "city", "state", "postalCode", "country")
            if address.get(key)
        }
        comparable = _fold(
            f"{' '.join(address.get('line') or [])}|{str(address.get('postalCode') or '')[:5]}"
        )
        found["address"] = (value, comparable, _is_verified(address), len(value))
    for communication in _dicts(resource.get("communication")):
        language = communication.get("language") or {}
        codes = [coding.get("code") for coding in _dicts(language.get("coding")) if coding.get("code")]
        if codes:
            preferred = communication.get("preferred") is True
            found.setdefault("preferred_language", (codes[0], str(codes[0]).lower(), False, int(preferred)))
            if preferred:
                found["preferred_language"] = (codes[0], str(codes[0]).lower(), False, 1)
    return found


def _candidates(records: Iterable[SourcePatient]) -> dict[str, list[CandidateValue]]:
    by_field: dict[str, list[CandidateValue]] = {}
    for record in records:
        overrides = record.source.connector_settings.get("trust") or {}
        recorded_at = record.source_updated_at or record.updated_at
        for field_name, (value, comparable, verified, completeness) in _field_values(record.resource).items():
            by_field.setdefault(field_name, []).append(
                CandidateValue(
                    value=value,
                    comparable=comparable,
                    source_slug=record.source.slug,
                    source_kind=record.source.kind,
                    source_record_id=record.source_record_id,
                    record_ref=str(record.external_id),
                    recorded_at=recorded_at,
                    verified=verified,
                    completeness=completeness,
                    trust_overrides=overrides if isinstance(overrides, dict) else {},
                )
            )
    return by_field


def _evidence(candidate: CandidateValue, field_name: str) -> JSON:
    return {
        "value": candidate.value,
        "source": candidate.source_slug,
        "source_record_id": candidate.source_record_id,
        "record": candidate.record_ref,
        "recorded_at": candidate.recorded_at.isoformat() if candidate.recorded_at else None,
        "trust_rank": trust_rank(candidate, field_name),
        "verified": candidate.verified,
    }


def _identifiers(records: Iterable[SourcePatient]) -> list[JSON]:
    found: dict[tuple[str, str], JSON] = {}
    for record in records:
        for identifier in _dicts(record.resource.get("identifier")):
            if identifier.get("value"):
                key = (str(identifier.get("system") or ""), str(identifier["value"]))
                found.setdefault(
                    key,
                    {
                        "system": key[0],
                        "value": key[1],
                        "source": record.source.slug,
                        "use": identifier.get("use"),
                    },
                )
    return sorted(found.values(), key=lambda item: (item["system"], item["value"]))


def _telecom(records: Iterable[SourcePatient]) -> list[JSON]:
    """Every contact point of every record, once per value, with the sources that give it."""
    found: dict[tuple[str, str], JSON] = {}
    for record in records:
        for point in _dicts(record.resource.get("telecom")):
            if not point.get("value"):
                continue
            key = (str(point.get("system") or ""), str(point["value"]).lower())
            entry = found.setdefault(
                key,
                {"system": key[0], "value": point["value"], "use": point.get("use"), "sources": []},
            )
            if record.source.slug not in entry["sources"]:
                entry["sources"].append(record.source.slug)
            entry["verified"] = entry.get("verified", False) or _is_verified(point)
    return list(found.values())


_PATIENT_FIELDS = (
    "family_name",
    "given_names",
    "family_phonetic",
    "given_phonetic",
    "birth_date",
    "gender",
    "phone",
    "email",
    "postal_code",
    "city",
    "preferred_language",
    "record",
    "provenance",
    "computed_at",
    "updated_at",
)


def _golden_compute(patient: Patient, records: list[SourcePatient]) -> dict[str, list[JSON]]:
    """Set the golden fields of ``patient`` from ``records``; return the conflicts that should be open."""
    record: JSON = {}
    provenance: JSON = {}
    open_conflicts: dict[str, list[JSON]] = {}
    for field_name, candidates in _candidates(records).items():
        choice = value_choose(field_name, candidates)
        if choice is None:
            continue
        record[field_name] = choice.winner.value
        provenance[field_name] = {**_evidence(choice.winner, field_name), "rule": choice.rule}
        provenance[field_name].pop("value")
        disagreeing = conflicting_values(field_name, candidates)
        if disagreeing:
            open_conflicts[field_name] = [_evidence(candidate, field_name) for candidate in disagreeing]
    record["identifiers"] = _identifiers(records)
    record["telecom"] = _telecom(records)
    record["sources"] = sorted({item.source.slug for item in records})
    _columns_set(patient, record)
    patient.record = record
    patient.provenance = provenance
    patient.computed_at = patient.updated_at = timezone.now()
    return open_conflicts


def patients_golden_recompute(
    patient_ids: Iterable[int], *, chunk_size: int = 1000, active_only: bool = False
) -> int:
    """Rebuild the golden records of many patients, a chunk at a time with a few queries per chunk
    (with ``active_only``, of those that are active: a merged-away patient keeps its last record)."""
    ids = sorted(set(patient_ids))
    if not ids:
        return 0
    sources = {source.pk: source for source in Source.objects.all()}
    done = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        found = Patient.objects.filter(pk__in=chunk)
        patients = list(found.filter(is_active=True) if active_only else found)
        records: dict[int, list[SourcePatient]] = defaultdict(list)
        rows = (
            SourcePatient.objects.filter(link__patient_id__in=chunk)
            .annotate(golden_id=F("link__patient_id"))
            .only(
                "pk",
                "external_id",
                "source_id",
                "source_record_id",
                "resource",
                "updated_at",
                "source_updated_at",
            )
            .order_by("pk")
        )
        for row in rows:
            row.source = sources[row.source_id]
            records[row.golden_id].append(row)
        wanted = {patient.pk: _golden_compute(patient, records[patient.pk]) for patient in patients}
        rows_update(Patient, patients, _PATIENT_FIELDS)
        _conflicts_sync(wanted)
        done += len(patients)
    return done


def patient_golden_recompute(patient: Patient) -> Patient:
    """Rebuild the golden record of ``patient`` from its linked records; open and resolve conflicts."""
    patients_golden_recompute([patient.pk])
    patient.refresh_from_db()
    return patient


def _columns_set(patient: Patient, record: JSON) -> None:
    name = record.get("name") or {}
    patient.family_name = str(name.get("family") or "")[:200]
    patient.given_names = " ".join(name.get("given") or [])[:200]
    patient.family_phonetic = phonetic(patient.family_name)[:40]
    patient.given_phonetic = given_phonetic(patient.given_names)
    birth_date = record.get("birth_date")
    try:
        patient.birth_date = date.fromisoformat(birth_date) if isinstance(birth_date, str) else None
    except ValueError:
        patient.birth_date = None
    patient.gender = str(record.get("gender") or "")[:10]
    patient.phone = str((record.get("phone") or {}).get("value") or "")[:20]
    patient.email = str((record.get("email") or {}).get("value") or "")[:254]
    address = record.get("address") or {}
    patient.postal_code = str(address.get("postalCode") or "")[:10]
    patient.city = str(address.get("city") or "")[:100]
    patient.preferred_language = str(record.get("preferred_language") or "")[:20]


def _conflicts_sync(wanted: dict[int, dict[str, list[JSON]]]) -> None:
    """Open, update and resolve conflicts so that the open ones are exactly ``wanted`` (patient -> field -> values)."""
    existing = {
        (conflict.patient_id, conflict.field): conflict
        for conflict in PatientConflict.objects.filter(
            patient_id__in=list(wanted), status=PatientConflict.Status.OPEN
        )
    }
    now = timezone.now()
    created, changed = [], []
    for patient_id, conflicts in wanted.items():
        for field_name, values in conflicts.items():
            conflict = existing.pop((patient_id, field_name), None)
            if conflict is None:
                created.append(PatientConflict(patient_id=patient_id, field=field_name, values=values))
            elif conflict.values != values:
                conflict.values = values
                conflict.updated_at = now
                changed.append(conflict)
    PatientConflict.objects.bulk_create(created)
    rows_update(PatientConflict, changed, ("values", "updated_at"))
    if existing:  # the sources agree again
        PatientConflict.objects.filter(pk__in=[conflict.pk for conflict in existing.values()]).update(
            status=PatientConflict.Status.RESOLVED, resolved_at=now, updated_at=now
        )
