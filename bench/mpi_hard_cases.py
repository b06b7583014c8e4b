"""Master patient index on the synthetic population's hard cases: look-alikes that must stay apart.

    .venv/bin/python bench/mpi_hard_cases.py [--people 5000] [--seed 0] [--out DIR]

1. Generates a synthetic population (``patients.synthetic``, as ``manage.py generate_synthetic`` does):
   hospital EHR and clinic EHR FHIR bundles, a CRM CSV export with its column mapping, ``truth.csv``
   (which person each record belongs to, and how it disagrees with them) and ``hard_negatives.csv``
   (pairs of different people who look alike: twins, common names, Jr/Sr, household members sharing a
   phone, ...).
2. Runs Concord's real path on a fresh PostgreSQL database ("bench_mpi_hard"): ``migrate``, ``ingest``
   of each source (FHIR folders with ``--format fhir``, the CRM with its mapping), ``mpi_train``,
   ``mpi_relink``, ``export_links``.
3. Prints pairwise precision, recall and F1 of the exported patient ids (and of the links ingestion
   made online, before training), the precision of automatic links, the share of records sent to review
   (POSSIBLE_MATCH), per hard-negative kind how many pairs of people were falsely merged (a record of
   each under one patient id), and per disagreement kind how many records were left apart from the
   rest of their person's records.

Prints every figure; asserts nothing (accuracy targets are printed beside the figures).
"""

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.linkage import (  # noqa: E402
    LinkRow,
    RealPathRun,
    RecordKey,
    SourceInput,
    automatic_link_precision,
    automatic_patient_of,
    cluster_pairwise_scores,
    ingest_summary_lines,
    patient_of,
    precision_verdict,
    real_path_run,
    scores_header,
    scores_line,
    state_counts,
    timing_lines,
)

DATABASE = "bench_mpi_hard"
# Kinds that must never be merged at all; the other kinds are reported without a target.
ZERO_MERGE_KINDS = ("twins", "junior_senior")
TARGET_REVIEW_SHARE = 0.02
TARGET_AUTOMATIC_PRECISION = 0.999
LABEL_WIDTH = 46


def population_write(out: Path, *, people: int, seed: int) -> dict[str, int]:
    from patients.synthetic import generate_population, write_population

    return write_population(generate_population(people=people, seed=seed), out)


def truth_read(out: Path) -> tuple[dict[RecordKey, str], dict[RecordKey, tuple[str, ...]]]:
    """(source, source record id) -> person id, and -> the record's disagreement kinds."""
    from patients.synthetic import read_truth

    rows = read_truth(out / "truth.csv")
    person_of = {(row.source, row.source_record_id): row.person_id for row in rows}
    disagreements_of = {(row.source, row.source_record_id): row.disagreements for row in rows}
    return person_of, disagreements_of


def hard_negatives_read(out: Path) -> list[tuple[str, str, str]]:
    with (out / "hard_negatives.csv").open(encoding="utf-8", newline="") as handle:
        return [(row["kind"], row["person_id"], row["other_person_id"]) for row in csv.DictReader(handle)]


def sources_of(out: Path) -> list[SourceInput]:
    # Slugs equal the truth's source names, so exported (source, id) keys meet the truth's.
    return [
        SourceInput(slug="hospital-ehr", paths=(out / "hospital-ehr",), format="fhir"),
        SourceInput(slug="clinic-ehr", paths=(out / "clinic-ehr",), format="fhir"),
        SourceInput(
            slug="crm",
            paths=(out / "crm" / "patients.csv",),
            format="csv",
            mapping=out / "crm" / "mapping.json",
        ),
    ]


def false_merges(
    patient_of_record: Mapping[RecordKey, str],
    person_of: Mapping[RecordKey, str],
    hard_negatives: list[tuple[str, str, str]],
) -> dict[str, tuple[int, int]]:
    """Per kind: (pairs of people, pairs with a record of each under one patient id)."""
    patients_of_person: defaultdict[str, set[str]] = defaultdict(set)
    for key, patient in patient_of_record.items():
        if key in person_of:
            patients_of_person[person_of[key]].add(patient)
    counts: dict[str, list[int]] = {}
    for kind, person, other in hard_negatives:
        total_merged = counts.setdefault(kind, [0, 0])
        total_merged[0] += 1
        if patients_of_person[person] & patients_of_person[other]:
            total_merged[1] += 1
    return {kind: (total, merged) for kind, (total, merged) in counts.items()}


def apart_by_disagreement(
    patient_of_record: Mapping[RecordKey, str],
    person_of: Mapping[RecordKey, str],
    disagreements_of: Mapping[RecordKey, tuple[str, ...]],
) -> dict[str, tuple[int, int]]:
    """Per disagreement kind: (records of people with 2+ records, those sharing no patient with the rest).

    A record with no disagreement counts under "(none)".
    """
    records_of_person: defaultdict[str, list[RecordKey]] = defaultdict(list)
    for key, person in person_of.items():
        records_of_person[person].append(key)
    counts: dict[str, list[int]] = {}
    for keys in records_of_person.values():
        if len(keys) < 2:
            continue
        for key in keys:
            others = {patient_of_record.get(other) for other in keys if other != key}
            is_apart = patient_of_record.get(key) is None or patient_of_record[key] not in others
            for kind in disagreements_of.get(key) or ("(none)",):
                total_apart = counts.setdefault(kind, [0, 0])
                total_apart[0] += 1
                total_apart[1] += int(is_apart)
    return {kind: (total, apart) for kind, (total, apart) in sorted(counts.items())}


def links_report(label: str, links: list[LinkRow], person_of: dict[RecordKey, str]) -> None:
    print(scores_line(label, cluster_pairwise_scores(patient_of(links), person_of), width=LABEL_WIDTH))


def report(
    run: RealPathRun,
    *,
    person_of: dict[RecordKey, str],
    disagreements_of: dict[RecordKey, tuple[str, ...]],
    hard_negatives: list[tuple[str, str, str]],
) -> None:
    links = run.links
    print("\nPairwise scores of the exported patient ids")
    print(scores_header(width=LABEL_WIDTH))
    if run.online_links is not None:
        links_report("online, after ingest", run.online_links, person_of)
    links_report("after mpi_train + mpi_relink", links, person_of)
    automatic = automatic_link_precision(links, person_of)
    print(scores_line("automatic links only (review left out)", automatic, width=LABEL_WIDTH))
    print(f"  automatic-link precision {precision_verdict(automatic, target=TARGET_AUTOMATIC_PRECISION)}")

    states = state_counts(links)
    exported = {link.key for link in links}
    missing = sum(1 for key in person_of if key not in exported)
    review = states.get("POSSIBLE_MATCH", 0)
    share = review / len(links) if links else 0.0
    print(
        f"\nExport: {len(links):,} records, {len({link.patient_id for link in links}):,} patients "
        f"({len(set(person_of.values())):,} people); "
        + ", ".join(f"{state} {count:,}" for state, count in sorted(states.items()))
    )
    if missing:
        print(f"  {missing:,} records of truth.csv missing from the export (scored as unlinked singletons)")
    print(
        f"Sent to review (POSSIBLE_MATCH): {review:,} of {len(links):,} records = {100 * share:.2f}% "
        f"(target < {100 * TARGET_REVIEW_SHARE:.0f}%: {'met' if share < TARGET_REVIEW_SHARE else 'NOT met'})"
    )

    print("\nHard negatives: pairs of different people with a record of each under one patient id")
    print(f"  {'kind':<16} {'pairs':>6} {'merged':>7} {'automatically':>14}  target")
    merged = false_merges(patient_of(links), person_of, hard_negatives)
    merged_automatically = false_merges(automatic_patient_of(links), person_of, hard_negatives)
    for kind, (total, count) in merged.items():
        target = ""
        if kind in ZERO_MERGE_KINDS:
            target = f"0: {'met' if count == 0 else 'NOT met'}"
        print(f"  {kind:<16} {total:6d} {count:7d} {merged_automatically[kind][1]:14d}  {target}")

    print("\nRecords left apart from the rest of their person's records, by disagreement with the truth")
    print(f"  {'disagreement':<28} {'records':>8} {'apart':>7} {'share':>7}")
    for kind, (total, apart) in apart_by_disagreement(patient_of(links), person_of, disagreements_of).items():
        print(f"  {kind:<28} {total:8d} {apart:7d} {100 * apart / total:6.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=5000, help="Synthetic people (default 5000).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, help="Keep the generated data in this folder (default: a temporary one)."
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="concord-hard-") as scratch:
        out = options.out or Path(scratch)
        started = time.perf_counter()
        counts = population_write(out, people=options.people, seed=options.seed)
        print(
            f"Population (seed {options.seed}) in {time.perf_counter() - started:.1f} s: "
            + ", ".join(f"{key} {value:,}" for key, value in counts.items())
        )
        person_of, disagreements_of = truth_read(out)
        hard_negatives = hard_negatives_read(out)
        kinds = Counter(kind for kind, _, _ in hard_negatives)
        print("Hard-negative pairs: " + ", ".join(f"{kind} {count}" for kind, count in kinds.items()))
        run = real_path_run(database=DATABASE, sources=sources_of(out))

    print("\nIngest:")
    print("\n".join(ingest_summary_lines(run.ingest_summaries)))
    if run.completed:
        report(run, person_of=person_of, disagreements_of=disagreements_of, hard_negatives=hard_negatives)
    else:
        print(f"\nLinking not run: manage.py has no {', '.join(run.missing_commands)} command yet.")
    print("\nSteps:")
    print("\n".join(timing_lines(run.timings)))


if __name__ == "__main__":
    main()
