"""A synthetic population: people, their records in three sources, and the ground truth kept apart.

The ground truth is ``truth.csv`` (which person each record belongs to, and how it disagrees with
them) and ``hard_negatives.csv``: pairs of different people who look alike (twins, common names, Jr
and Sr, members of a household sharing one phone, the Maria Garcias), at the rates in
``hard_negative_counts``.
"""

import csv
import dataclasses
import itertools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patients.synthetic.csv_export import crm_export_write, crm_row
from patients.synthetic.disagreements import apply_person_events, apply_record_damage
from patients.synthetic.fhir_bundles import new_uuid, patient_bundle
from patients.synthetic.people import HardNegative, Person, PersonMaker, hard_negative_counts
from patients.synthetic.records import CLINIC_EHR, CRM, EHR_SOURCES, HOSPITAL_EHR, RecordView

JSON = dict[str, Any]

CLINIC_PRESENCE_RATE = 0.60
CRM_PRESENCE_RATE = 0.80
# Share of CRM records that carry the hospital MRN (patients who linked their portal account).
CRM_KNOWS_HOSPITAL_MRN_RATE = 0.45

TRUTH_COLUMNS = ("source", "source_record_id", "person_id", "disagreements")
TRUTH_SEPARATOR = ";"  # between disagreement kinds in truth.csv


@dataclass(frozen=True)
class SourceRecord:
    """One record as a source delivers it. It says nothing about whom it belongs to: that is truth."""

    source: str
    source_record_id: str  # the Patient resource id (EHRs) or the CustomerID (CRM)
    payload: JSON  # a FHIR transaction Bundle (EHRs) or a CSV row keyed by column (CRM)


@dataclass(frozen=True)
class TruthRow:
    source: str
    source_record_id: str
    person_id: str
    disagreements: tuple[str, ...]


@dataclass(frozen=True)
class Population:
    seed: int
    people: list[Person]
    records: list[SourceRecord]
    truth: list[TruthRow]
    hard_negatives: list[HardNegative]

    def records_of(self, source: str) -> list[SourceRecord]:
        return [record for record in self.records if record.source == source]


def _unique_numbers(randomness: random.Random, *, low: int, high: int, count: int) -> Iterator[int]:
    # range() is sampled lazily, so a wide range costs nothing.
    return iter(randomness.sample(range(low, high), k=count))


def _drafts(*, maker: PersonMaker, people: int) -> tuple[list[Person], list[tuple[str, int, int]]]:
    """People without ids yet, hard negatives first, and the hard-negative pairs as draft positions."""
    drafts: list[Person] = []
    pairs: list[tuple[str, int, int]] = []

    def add_group(kind: str, group: Sequence[Person]) -> None:
        # Every two members of a group look alike, so every pair of them is a hard negative.
        positions = range(len(drafts), len(drafts) + len(group))
        pairs.extend((kind, first, second) for first, second in itertools.combinations(positions, 2))
        drafts.extend(group)

    counts = hard_negative_counts(people=people)
    for _ in range(counts.twins):
        first = maker.person()
        add_group("twins", (first, maker.twin(first)))
    for _ in range(counts.common_name):
        add_group("common_name", maker.common_name_pair())
    for _ in range(counts.junior_senior):
        add_group("junior_senior", maker.junior_senior_pair())
    for _ in range(counts.shared_phone):
        add_group("shared_phone", maker.household())
    if counts.same_name:
        add_group("same_name", maker.same_name_cluster(size=counts.same_name))
    while len(drafts) < people:
        drafts.append(maker.person())
    return drafts, pairs


def generate_population(*, people: int, seed: int = 0) -> Population:
    """``people`` synthetic people and their hospital EHR, clinic EHR and CRM records; same seed, same output."""
    if people < 0:
        raise ValueError("people must be zero or more")
    maker = PersonMaker(seed=seed)
    randomness = random.Random(f"concord-synthetic:{seed}:records")
    transposition_randomness = random.Random(f"concord-synthetic:{seed}:transpositions")
    drafts, pairs = _drafts(maker=maker, people=people)
    # Shuffled, so that person ids say nothing about which people are hard negatives of each other.
    order = list(range(len(drafts)))
    randomness.shuffle(order)
    person_id_of_draft = {draft: f"P{position + 1:06d}" for position, draft in enumerate(order)}
    hospital_numbers = _unique_numbers(randomness, low=10_000_000, high=100_000_000, count=people)
    clinic_numbers = _unique_numbers(randomness, low=1_000_000, high=10_000_000, count=people)
    customer_numbers = _unique_numbers(randomness, low=1_000_000, high=10_000_000, count=people)

    population_people: list[Person] = []
    records: list[SourceRecord] = []
    truth: list[TruthRow] = []
    for draft in order:
        sources = [HOSPITAL_EHR]
        if randomness.random() < CLINIC_PRESENCE_RATE:
            sources.append(CLINIC_EHR)
        if randomness.random() < CRM_PRESENCE_RATE:
            sources.append(CRM)
        medical_record_numbers = {HOSPITAL_EHR: str(next(hospital_numbers))}
        if CLINIC_EHR in sources:
            medical_record_numbers[CLINIC_EHR] = f"C{next(clinic_numbers)}"
        person = dataclasses.replace(
            drafts[draft], person_id=person_id_of_draft[draft], medical_record_numbers=medical_record_numbers
        )
        views: dict[str, RecordView] = {}
        for source in sources:
            source_record_id = f"{next(customer_numbers)}" if source == CRM else new_uuid(randomness)
            views[source] = RecordView.of(person, source=source, source_record_id=source_record_id)
        if CRM in views and randomness.random() < CRM_KNOWS_HOSPITAL_MRN_RATE:
            views[CRM].known_hospital_mrn = medical_record_numbers[HOSPITAL_EHR]
        person = apply_person_events(person, views=views, randomness=randomness, maker=maker)
        for view in views.values():
            apply_record_damage(
                view, randomness=randomness, transposition_randomness=transposition_randomness
            )
            if view.source == CRM:
                payload = crm_row(view)
            else:
                payload = patient_bundle(view, patient_id=view.source_record_id, randomness=randomness)
            records.append(
                SourceRecord(source=view.source, source_record_id=view.source_record_id, payload=payload)
            )
            truth.append(
                TruthRow(
                    source=view.source,
                    source_record_id=view.source_record_id,
                    person_id=person.person_id,
                    disagreements=tuple(str(kind) for kind in view.disagreements),
                )
            )
        population_people.append(person)

    hard_negatives = [
        HardNegative(kind=kind, person_ids=(person_id_of_draft[first], person_id_of_draft[second]))
        for kind, first, second in pairs
    ]
    # Sorted by id rather than by person, so that the order of records does not group a person's records.
    records.sort(key=lambda record: (record.source, record.source_record_id))
    truth.sort(key=lambda row: (row.source, row.source_record_id))
    return Population(
        seed=seed, people=population_people, records=records, truth=truth, hard_negatives=hard_negatives
    )


def _json_files_remove(directory: Path) -> None:
    # A rerun with fewer people must not leave bundles behind that truth.csv knows nothing about.
    for stale in directory.glob("*.json"):
        stale.unlink()


def write_population(population: Population, out_dir: Path) -> dict[str, int]:
    """Write every source's records, the CRM column mapping and the ground truth; return counts.

    Layout: ``hospital-ehr/<id>.json`` and ``clinic-ehr/<id>.json`` (one Bundle per person),
    ``crm/patients.csv`` and ``crm/mapping.json``, ``truth.csv`` and ``hard_negatives.csv``.
    Stale ``*.json`` files in the two EHR folders are removed first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"people": len(population.people)}
    resources = 0
    for source in EHR_SOURCES:
        directory = out_dir / source
        directory.mkdir(exist_ok=True)
        _json_files_remove(directory)
        source_records = population.records_of(source)
        for record in source_records:
            text = json.dumps(record.payload, indent=2, ensure_ascii=False) + "\n"
            (directory / f"{record.source_record_id}.json").write_text(text, encoding="utf-8")
            resources += len(record.payload["entry"])
        counts[source] = len(source_records)
    counts[CRM] = crm_export_write(
        (record.payload for record in population.records_of(CRM)), directory=out_dir / CRM
    )
    counts["resources"] = resources

    counts["truth"] = truth_write(population.truth, path=out_dir / "truth.csv")

    with (out_dir / "hard_negatives.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("kind", "person_id", "other_person_id"))
        for pair in population.hard_negatives:
            writer.writerow((pair.kind, *pair.person_ids))
    counts["hard_negatives"] = len(population.hard_negatives)
    return counts


def truth_write(truth: Sequence[TruthRow], *, path: Path) -> int:
    """Write ``truth.csv`` (one row per source record, in the order given); return the number of rows."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRUTH_COLUMNS)
        for row in truth:
            writer.writerow(
                (row.source, row.source_record_id, row.person_id, TRUTH_SEPARATOR.join(row.disagreements))
            )
    return len(truth)


def read_truth(path: Path) -> list[TruthRow]:
    """The rows of a ``truth.csv`` written by ``write_population``."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            TruthRow(
                source=row["source"],
                source_record_id=row["source_record_id"],
                person_id=row["person_id"],
                disagreements=tuple(kind for kind in row["disagreements"].split(TRUTH_SEPARATOR) if kind),
            )
            for row in csv.DictReader(handle)
        ]
