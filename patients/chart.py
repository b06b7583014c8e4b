"""Reads for the unified patient page: everything the linked source records hold, in a fixed number of queries.

The same fact from two sources is shown once with both source badges: an observation with the same code
(LOINC when terminology normalization found one) and value taken within OBSERVATION_TOLERANCE of each other,
a problem or allergy naming the same concept (SNOMED CT, ICD-10-CM or text, ``governance.policies.
clinical_concepts``), an immunization or procedure with the same code on the same day. The stored source
resources stay as they are. JSON is not parsed in Python for the bulk of the record:
PostgreSQL extracts the few elements each list shows.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models.fields.json import KT, KeyTransform

from governance.policies.clinical_concepts import ALLERGY, CONDITION, clinical_concept_group
from patients.ingest.extract import fhir_datetime
from patients.models import Patient, PatientConflict, PatientLink, SourceResource

BLOOD_PRESSURE_PANELS = {"85354-9", "55284-4"}
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
WEIGHT, BMI, HEIGHT = "29463-7", "39156-5", "8302-2"
# LOINC codes of the FHIR vital-signs profiles: an observation sent without a category is a vital sign if its
# code is one of these, else a result (HL7 v2 results carry no category; FHIR sources send one).
VITAL_SIGN_CODES = {
    *BLOOD_PRESSURE_PANELS, SYSTOLIC, DIASTOLIC, WEIGHT, BMI, HEIGHT,
    "85353-1", "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "9843-4",
}  # fmt: skip
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# Set by terminology normalization on the ingredient-level coding it adds (patients.terminology).
INGREDIENT_MATCH_EXTENSION = "terminology-match"
INPATIENT_CLASSES = {"IMP", "ACUTE", "NONAC", "EMER", "OBSENC"}
# What the encounter timeline calls each class (HL7 v3 ActEncounterCode, the codes FHIR R4 binds); another
# code is shown as it came.
ENCOUNTER_CLASS_LABELS = {
    "AMB": "Outpatient",
    "EMER": "Emergency",
    "IMP": "Inpatient",
    "ACUTE": "Inpatient (acute)",
    "NONAC": "Inpatient (non-acute)",
    "OBSENC": "Observation stay",
    "PRENC": "Pre-admission",
    "SS": "Short stay",
    "HH": "Home health",
    "FLD": "Field",
    "VR": "Virtual",
}
# Two sources' readings of one measurement rarely carry the same instant (an interface engine stamps its own).
OBSERVATION_TOLERANCE = timedelta(hours=1)
STOPPED_STATUSES = {"stopped", "completed", "cancelled", "entered-in-error", "not-taken"}
CLINICAL_TYPES = (
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
    "Procedure",
    "Observation",
    "DiagnosticReport",
    "DocumentReference",
)


@dataclass
class SourceBadge:
    slug: str
    name: str
    kind: str
    record_id: str


@dataclass
class Fact:
    """One clinical fact as the page lists it, with every source that reported it."""

    resource_type: str
    code: str
    display: str
    when: datetime | None
    status: str
    value: str = ""
    detail: str = ""
    category: str = ""
    end: datetime | None = None  # an encounter's discharge or end
    sources: list[SourceBadge] = field(default_factory=list)

    @property
    def class_label(self) -> str:
        """An encounter's class as the timeline names it ("Emergency" for EMER)."""
        return ENCOUNTER_CLASS_LABELS.get(self.category.upper(), self.category)


@dataclass
class MedicationEntry:
    product: str
    status: str
    when: datetime | None
    source: SourceBadge
    inpatient: bool


@dataclass
class ReconciledMedication:
    """One ingredient (or combination) across every source, with what a reviewer must look at."""

    ingredient: str
    entries: list[MedicationEntry] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[SourceBadge]:
        seen: dict[str, SourceBadge] = {}
        for entry in self.entries:
            seen.setdefault(entry.source.slug, entry.source)
        return list(seen.values())

    @property
    def is_active(self) -> bool:
        return any(entry.status == "active" for entry in self.entries)


@dataclass
class Point:
    when: datetime
    value: float
    source: str


@dataclass
class PatientChart:
    patient: Patient
    links: list[PatientLink]
    conflicts: dict[str, PatientConflict]
    encounters: list[Fact]
    problems: list[Fact]
    allergies: list[Fact]
    medications: list[ReconciledMedication]
    immunizations: list[Fact]
    procedures: list[Fact]
    labs: list[Fact]
    vitals: list[Fact]
    documents: list[Fact]
    series: dict[str, list[Point]]  # LOINC code -> points, for charts
    lab_codes: list[tuple[str, str]]  # (code, display) of labs with numeric results
    resource_count: int


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _value_text(row: dict[str, Any]) -> str:
    number = _number(row["value"])
    if number is not None:
        rendered = f"{number:g}"
        return f"{rendered} {row['unit']}".strip() if row["unit"] else rendered
    return str(row["value_text"] or row["value_concept"] or "")


def _components(raw: Any) -> dict[str, float]:
    found: dict[str, float] = {}
    for component in raw or []:
        if not isinstance(component, dict):
            continue
        quantity = component.get("valueQuantity") or {}
        number = _number(quantity.get("value"))
        for coding in (component.get("code") or {}).get("coding") or []:
            if isinstance(coding, dict) and coding.get("code") and number is not None:
                found[str(coding["code"])] = number
    return found


def _codes(raw: Any) -> set[str]:
    """Every LOINC code of a CodeableConcept (the source's and the ones normalization added)."""
    return {
        str(coding.get("code"))
        for coding in (raw or {}).get("coding") or []
        if isinstance(coding, dict) and coding.get("system") == LOINC and coding.get("code")
    }


def _rows(records: list[int]) -> Any:
    return (
        SourceResource.objects.filter(patient_id__in=records, resource_type__in=CLINICAL_TYPES)
        .order_by("-effective_at", "resource_type", "pk")
        .values(
            "resource_type",
            "patient_id",
            "source_record_id",
            "code",
            "effective_at",
            "status",
            display=KT("resource__code__text"),
            coding_display=KT("resource__code__coding__0__display"),
            type_display=KT("resource__type__0__text"),
            type_coding=KT("resource__type__0__coding__0__display"),
            medication=KT("resource__medicationCodeableConcept__text"),
            medication_coding=KT("resource__medicationCodeableConcept__coding__0__display"),
            vaccine=KT("resource__vaccineCode__text"),
            vaccine_coding=KT("resource__vaccineCode__coding__0__display"),
            category=KT("resource__category__0__coding__0__code"),
            encounter_class=KT("resource__class__code"),
            period_end=KT("resource__period__end"),
            value=KT("resource__valueQuantity__value"),
            unit=KT("resource__valueQuantity__unit"),
            value_text=KT("resource__valueString"),
            value_concept=KT("resource__valueCodeableConcept__text"),
            interpretation=KT("resource__interpretation__0__coding__0__code"),
            criticality=KT("resource__criticality"),
            encounter_reference=KT("resource__encounter__reference"),
            medication_json=KeyTransform("medicationCodeableConcept", "resource"),
            code_json=KeyTransform("code", "resource"),
            components=KeyTransform("component", "resource"),
        )
    )


def _display(row: dict[str, Any]) -> str:
    for key in ("display", "coding_display", "medication", "medication_coding", "vaccine", "vaccine_coding"):
        if row.get(key):
            return str(row[key])
    return str(row.get("type_display") or row.get("type_coding") or row.get("code") or "(no code)")


def _merge_fact(
    facts: dict[tuple[Any, ...], Fact], key: tuple[Any, ...], fact: Fact, badge: SourceBadge
) -> None:
    existing = facts.get(key)
    if existing is None:
        fact.sources.append(badge)
        facts[key] = fact
    elif all(source.slug != badge.slug for source in existing.sources):
        existing.sources.append(badge)


class ObservationFacts:
    """Observations merged across sources: the same key (code and value) taken within the tolerance.

    Readings are collected first and merged once all are known, nearest in time first, each merged fact
    holding at most one reading per source: two readings of one source are two measurements.
    """

    def __init__(self) -> None:
        self._readings: list[tuple[tuple[Any, ...], Fact, SourceBadge, list[tuple[str, Point]]]] = []

    def add(
        self, key: tuple[Any, ...], fact: Fact, badge: SourceBadge, points: list[tuple[str, Point]]
    ) -> None:
        self._readings.append((key, fact, badge, points))

    def merged(self, series: dict[str, list[Point]]) -> list[Fact]:
        """The facts, most recent first, each with its sources; the chart points of each fact go to ``series``."""
        cluster = list(range(len(self._readings)))
        if len({badge.slug for _, _, badge, _ in self._readings}) > 1:
            self._merge_across_sources(cluster)
        facts = []
        for index, (_, fact, badge, points) in enumerate(self._readings):
            root = self._root(cluster, index)
            self._readings[root][1].sources.append(badge)
            if root == index:
                facts.append(fact)
                for code, point in points:
                    series[code].append(point)
        return facts

    def _merge_across_sources(self, cluster: list[int]) -> None:
        slugs = [{badge.slug} for _, _, badge, _ in self._readings]
        by_key: dict[tuple[Any, ...], list[tuple[datetime, int]]] = defaultdict(list)
        for index, (key, fact, _, _) in enumerate(self._readings):
            if fact.when is not None:
                by_key[key].append((fact.when, index))
        pairs = []
        for timed in by_key.values():
            timed.sort()
            for position, (first_when, first) in enumerate(timed):
                for later in range(position + 1, len(timed)):
                    second_when, second = timed[later]
                    gap = second_when - first_when
                    if gap > OBSERVATION_TOLERANCE:
                        break
                    if self._readings[first][2].slug != self._readings[second][2].slug:
                        pairs.append((gap, first, second))
        for _, first, second in sorted(pairs):
            left, right = self._root(cluster, first), self._root(cluster, second)
            if left != right and not slugs[left] & slugs[right]:
                survivor, absorbed = min(left, right), max(left, right)
                cluster[absorbed] = survivor
                slugs[survivor] |= slugs[absorbed]

    @staticmethod
    def _root(cluster: list[int], index: int) -> int:
        while cluster[index] != index:
            index = cluster[index]
        return index


def patient_links_get(patient: Patient) -> list[PatientLink]:
    """The patient's links with their source records and sources, in the order the page lists them."""
    return list(
        PatientLink.objects.filter(patient=patient)
        .select_related("source_patient__source")
        # What badges show: the records' JSON, features and the link's comparisons stay in the database.
        .only(
            "state",
            "origin",
            "patient_id",
            "source_patient__source_record_id",
            "source_patient__source__slug",
            "source_patient__source__name",
            "source_patient__source__kind",
        )
        .order_by("source_patient__source__name", "source_patient__source_record_id")
    )


def patient_chart_get(patient: Patient, *, links: list[PatientLink] | None = None) -> PatientChart:
    """Everything the patient page shows, in four queries whatever the size of the record (three when the
    caller already has ``patient_links_get``)."""
    links = patient_links_get(patient) if links is None else links
    badges = {
        link.source_patient_id: SourceBadge(
            link.source_patient.source.slug,
            link.source_patient.source.name,
            link.source_patient.source.kind,
            link.source_patient.source_record_id,
        )
        for link in links
    }
    conflicts = {
        conflict.field: conflict
        for conflict in PatientConflict.objects.filter(patient=patient, status=PatientConflict.Status.OPEN)
    }
    groups: dict[str, dict[tuple[Any, ...], Fact]] = defaultdict(dict)
    vitals, labs = ObservationFacts(), ObservationFacts()
    series: dict[str, list[Point]] = defaultdict(list)
    lab_names: dict[str, str] = {}
    count = 0
    medication_rows: list[tuple[dict[str, Any], SourceBadge, str]] = []
    inpatient_encounters: set[tuple[int, str]] = set()
    for row in _rows(list(badges)):
        count += 1
        badge = badges[row["patient_id"]]
        when: datetime | None = row["effective_at"]
        day = when.date() if when else None
        resource_type = row["resource_type"]
        display = _display(row)
        fact = Fact(resource_type, row["code"], display, when, row["status"])
        if resource_type == "Encounter":
            fact.category = str(row["encounter_class"] or "")
            if fact.category.upper() in INPATIENT_CLASSES:
                inpatient_encounters.add((row["patient_id"], f"Encounter/{row['source_record_id']}"))
            fact.end = fhir_datetime(row["period_end"])
            _merge_fact(groups["encounters"], (fact.category, display, when), fact, badge)
        elif resource_type == "Observation":
            category = str(row["category"] or "")
            fact.category = category
            codes = _codes(row["code_json"]) | {row["code"]}
            components = _components(row["components"])
            if codes & BLOOD_PRESSURE_PANELS or {SYSTOLIC, DIASTOLIC} <= set(components):
                systolic, diastolic = components.get(SYSTOLIC), components.get(DIASTOLIC)
                if systolic is not None and diastolic is not None:
                    fact.value = f"{systolic:g}/{diastolic:g} mmHg"
                else:
                    fact.value = str(row["value_text"] or "")
                points = []
                if when and systolic is not None and diastolic is not None:
                    points = [
                        (SYSTOLIC, Point(when, systolic, badge.slug)),
                        (DIASTOLIC, Point(when, diastolic, badge.slug)),
                    ]
                vitals.add(("bp", fact.value), fact, badge, points)
                continue
            fact.value = _value_text(row)
            fact.detail = str(row["interpretation"] or "")
            number = _number(row["value"])
            loinc = sorted(_codes(row["code_json"]))
            key = (loinc[0] if loinc else row["code"], fact.value)
            points = (
                [(code, Point(when, number, badge.slug)) for code in codes]
                if when and number is not None
                else []
            )
            if category.startswith("vital") or (not category and codes & VITAL_SIGN_CODES):
                vitals.add(key, fact, badge, points)
            elif category == "laboratory" or not category:
                if number is not None:
                    lab_names.setdefault(row["code"], display)
                labs.add(key, fact, badge, points)
            else:
                for code, point in points:
                    series[code].append(point)
        elif resource_type in {"Condition", "AllergyIntolerance"}:
            kind = CONDITION if resource_type == "Condition" else ALLERGY
            group = clinical_concept_group(row["code_json"], kind=kind)
            if group is not None and group.concept is not None:
                fact.display = group.display
            concept_key = group.key if group is not None else display
            if resource_type == "Condition":
                _merge_fact(groups["problems"], (concept_key, fact.status), fact, badge)
            else:
                fact.detail = str(row["criticality"] or "")
                _merge_fact(groups["allergies"], (concept_key,), fact, badge)
        elif resource_type in {"MedicationRequest", "MedicationStatement"}:
            medication_rows.append((row, badge, display))
        elif resource_type == "Immunization":
            _merge_fact(groups["immunizations"], (row["code"], day), fact, badge)
        elif resource_type == "Procedure":
            _merge_fact(groups["procedures"], (row["code"], day), fact, badge)
        else:  # DiagnosticReport, DocumentReference
            _merge_fact(groups["documents"], (resource_type, row["code"], when), fact, badge)
    vital_facts, lab_facts = vitals.merged(series), labs.merged(series)
    for series_points in series.values():
        series_points.sort(key=lambda point: point.when)
    return PatientChart(
        patient=patient,
        links=links,
        conflicts=conflicts,
        encounters=list(groups["encounters"].values()),
        problems=list(groups["problems"].values()),
        allergies=list(groups["allergies"].values()),
        medications=medications_reconcile(medication_rows, inpatient_encounters),
        immunizations=list(groups["immunizations"].values()),
        procedures=list(groups["procedures"].values()),
        labs=lab_facts,
        vitals=vital_facts,
        documents=list(groups["documents"].values()),
        series=dict(series),
        lab_codes=sorted(lab_names.items(), key=lambda item: item[1].lower()),
        resource_count=count,
    )


def _ingredients(concept: Any, fallback: str) -> tuple[tuple[str, ...], str]:
    """Ingredient codes (RxNorm) of a medication concept and their names; the text itself when unknown."""
    codes: dict[str, str] = {}
    for coding in (concept or {}).get("coding") or []:
        if not isinstance(coding, dict) or coding.get("system") != RXNORM or not coding.get("code"):
            continue
        extensions = [
            str(item.get("url", "")) for item in coding.get("extension") or [] if isinstance(item, dict)
        ]
        if any(url.endswith(INGREDIENT_MATCH_EXTENSION) for url in extensions):
            codes[str(coding["code"])] = str(coding.get("display") or coding["code"])
    if not codes:
        return (fallback.lower(),), fallback
    ordered = tuple(sorted(codes))
    return ordered, " + ".join(codes[code] for code in ordered)


def medications_reconcile(
    rows: list[tuple[dict[str, Any], SourceBadge, str]], inpatient_encounters: set[tuple[int, str]]
) -> list[ReconciledMedication]:
    """The reconciled medication list: one line per ingredient, every source's entries, and flags for
    duplicate therapy, hospital-started prescriptions and medications stopped in one source but active in
    another."""
    groups: dict[tuple[str, ...], ReconciledMedication] = {}
    for row, badge, display in rows:
        key, name = _ingredients(row["medication_json"], display)
        group = groups.setdefault(key, ReconciledMedication(name))
        inpatient = (row["patient_id"], str(row["encounter_reference"] or "")) in inpatient_encounters
        group.entries.append(
            MedicationEntry(display, str(row["status"] or ""), row["effective_at"], badge, inpatient)
        )
    for group in groups.values():
        active = [entry for entry in group.entries if entry.status == "active"]
        if (
            len({entry.source.slug for entry in active}) > 1
            and len({entry.product.lower() for entry in active}) > 1
        ):
            group.flags.append("duplicate therapy: active in several sources under different products")
        if any(entry.inpatient for entry in group.entries):
            group.flags.append("started during a hospital stay")
        stopped_sources = {entry.source.slug for entry in group.entries if entry.status in STOPPED_STATUSES}
        active_sources = {entry.source.slug for entry in active}
        if stopped_sources - active_sources and active_sources - stopped_sources:
            group.flags.append("stopped in one source, still active in another")
    return sorted(groups.values(), key=lambda group: (not group.is_active, group.ingredient.lower()))
