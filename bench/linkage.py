"""What the linkage benchmarks share: pairwise scoring and one run of the real path on a fresh database.

Pairwise scoring counts unordered record pairs: a predicted pair is two records the linker put under
one patient (or one cluster), a true pair two records of one person. Scores computed from clusters
count pairs by cluster sizes instead of listing them, so a runaway merge of thousands of records costs
nothing to score.

``real_path_run`` drives Concord as an operator would: ``migrate``, ``ingest`` per source,
``mpi_train``, ``mpi_relink``, ``export_links``, each a separate ``manage.py`` process on a fresh
PostgreSQL database, and reads the exported links back with the time each step took.
"""

import csv
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import database_recreate, run_manage  # noqa: E402

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"
LINK_STATES = ("MATCH", "POSSIBLE_MATCH", "NO_MATCH")
EXPORT_COLUMNS = ("source", "source_record_id", "patient_id", "state", "score")
MPI_COMMANDS = ("mpi_train", "mpi_relink", "export_links")

type RecordKey = tuple[str, str]  # (source slug, source record id)
type RecordPair = frozenset[RecordKey]


# Scoring ---------------------------------------------------------------------------------------------


def pairs_from_clusters[K: Hashable](cluster_of: Mapping[K, Hashable]) -> set[frozenset[K]]:
    """Every unordered pair of keys that share a cluster id."""
    members: defaultdict[Hashable, list[K]] = defaultdict(list)
    for key, cluster in cluster_of.items():
        members[cluster].append(key)
    return {
        frozenset(pair)
        for keys in members.values()
        if len(keys) > 1
        for pair in itertools.combinations(keys, 2)
    }


def clusters_from_pairs[K: Hashable](keys: Iterable[K], pairs: Iterable[Iterable[K]]) -> dict[K, K]:
    """Connected components of ``pairs`` over ``keys``: each key mapped to its component's representative."""
    parent: dict[K, K] = {key: key for key in keys}

    def root(key: K) -> K:
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving keeps the trees flat
            key = parent[key]
        return key

    for pair in pairs:
        first, second = tuple(pair)
        parent.setdefault(first, first)
        parent.setdefault(second, second)
        first_root, second_root = root(first), root(second)
        if first_root != second_root:
            parent[second_root] = first_root
    return {key: root(key) for key in parent}


def _scores(*, true_positives: int, predicted: int, actual: int) -> dict[str, float]:
    false_positives = predicted - true_positives
    false_negatives = actual - true_positives
    precision = true_positives / predicted if predicted else 1.0
    recall = true_positives / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": true_positives,
        "fp": false_positives,
        "fn": false_negatives,
    }


def pairwise_scores[K: Hashable](
    predicted_pairs: AbstractSet[frozenset[K]], true_pairs: AbstractSet[frozenset[K]]
) -> dict[str, float]:
    """Precision, recall and F1 of predicted record pairs against the true ones, with tp, fp and fn.

    With nothing predicted precision is 1.0 (no false link was made), with nothing to find recall is 1.0.
    """
    return _scores(
        true_positives=len(predicted_pairs & true_pairs),
        predicted=len(predicted_pairs),
        actual=len(true_pairs),
    )


def _pair_count(size: int) -> int:
    return size * (size - 1) // 2


def cluster_pairwise_scores[K: Hashable](
    predicted_cluster_of: Mapping[K, Hashable], true_cluster_of: Mapping[K, Hashable]
) -> dict[str, float]:
    """``pairwise_scores`` of two clusterings of the same keys, counted from cluster sizes.

    Keys missing from the prediction count as singletons (their true pairs are missed).
    """
    predicted_sizes = Counter(predicted_cluster_of.values())
    true_sizes = Counter(true_cluster_of.values())
    overlap = Counter(
        (predicted_cluster_of[key], true_cluster_of[key])
        for key in true_cluster_of
        if key in predicted_cluster_of
    )
    return _scores(
        true_positives=sum(map(_pair_count, overlap.values())),
        predicted=sum(map(_pair_count, predicted_sizes.values())),
        actual=sum(map(_pair_count, true_sizes.values())),
    )


def scores_line(label: str, scores: Mapping[str, float], *, width: int = 44) -> str:
    return (
        f"  {label:<{width}} {scores['precision']:9.4f} {scores['recall']:9.4f} {scores['f1']:9.4f}"
        f" {int(scores['tp']):7d} {int(scores['fp']):7d} {int(scores['fn']):7d}"
    )


def scores_header(*, width: int = 44) -> str:
    return f"  {'':<{width}} {'precision':>9} {'recall':>9} {'F1':>9} {'tp':>7} {'fp':>7} {'fn':>7}"


# The real path ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceInput:
    """One source's data as an operator hands it to ``manage.py ingest``."""

    slug: str
    paths: tuple[Path, ...]  # files or directories (ingest recurses directories)
    format: str  # "csv", "fhir" or "hl7v2"
    mapping: Path | None = None  # the CSV column mapping


@dataclass(frozen=True)
class LinkRow:
    source: str
    source_record_id: str
    patient_id: str
    state: str
    score: float | None

    @property
    def key(self) -> RecordKey:
        return (self.source, self.source_record_id)


@dataclass
class RealPathRun:
    links: list[LinkRow]
    timings: dict[str, float]  # step -> seconds, in the order run
    ingest_summaries: dict[str, dict[str, Any]]  # source slug -> ingest --json summary
    online_links: list[LinkRow] | None = None  # export right after ingest, before mpi_train
    missing_commands: list[str] = field(default_factory=list)  # set when the run stopped before linking

    @property
    def completed(self) -> bool:
        return not self.missing_commands


def real_path_environment(database: str, *, postgres_url: str = POSTGRES_URL) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"{postgres_url}/{database}",
        # Empty broker: Celery runs every task eagerly inside the ingest process, as in the embedded default.
        "CELERY_BROKER_URL": "",
        "CELERY_RESULT_BACKEND": "",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "false",
    }


def commands_missing(env: dict[str, str], commands: Sequence[str] = MPI_COMMANDS) -> list[str]:
    available = set(run_manage(env, "help", "--commands").split())
    return [command for command in commands if command not in available]


def links_read(path: Path) -> list[LinkRow]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != EXPORT_COLUMNS:
            sys.exit(f"export_links wrote the header {reader.fieldnames}, expected {list(EXPORT_COLUMNS)}")
        rows = list(reader)
    unknown = sorted({row["state"] for row in rows} - set(LINK_STATES))
    if unknown:
        sys.exit(f"export_links wrote the unknown state(s) {unknown}, expected {list(LINK_STATES)}")
    return [
        LinkRow(
            source=row["source"],
            source_record_id=row["source_record_id"],
            patient_id=row["patient_id"],
            state=row["state"],
            score=float(row["score"]) if row["score"] not in ("", None) else None,
        )
        for row in rows
    ]


def _timed(timings: dict[str, float], step: str, env: dict[str, str], *arguments: str) -> str:
    # Progress on stderr: when a later step fails, what the earlier ones did is already on screen.
    print(f"[real path] {step} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    output = run_manage(env, *arguments)
    timings[step] = time.perf_counter() - started
    print(f"[real path] {step} done in {timings[step]:.1f} s", file=sys.stderr, flush=True)
    return output


def real_path_run(
    *,
    database: str,
    sources: Sequence[SourceInput],
    postgres_url: str = POSTGRES_URL,
    export_after_ingest: bool = True,
) -> RealPathRun:
    """Recreate ``database``, migrate, ingest every source, train, relink, export; read the export back.

    With ``export_after_ingest`` the links are also exported once ingestion ends, to measure the online
    linking that runs as records arrive. When the MPI commands do not exist yet the run stops after
    ingestion and says which are missing.
    """
    env = real_path_environment(database, postgres_url=postgres_url)
    timings: dict[str, float] = {}
    summaries: dict[str, dict[str, Any]] = {}
    database_recreate(f"{postgres_url}/postgres", database)
    _timed(timings, "migrate", env, "migrate", "--no-input", "-v0")
    for source in sources:
        arguments = ["ingest", "--source", source.slug, "--format", source.format, "--json"]
        if source.mapping is not None:
            arguments += ["--mapping", str(source.mapping)]
        output = _timed(timings, f"ingest {source.slug}", env, *arguments, *map(str, source.paths))
        summaries[source.slug] = json.loads(output.strip().splitlines()[-1])
        print(
            "\n".join(ingest_summary_lines({source.slug: summaries[source.slug]})),
            file=sys.stderr,
            flush=True,
        )
    missing = commands_missing(env)
    if missing:
        return RealPathRun(links=[], timings=timings, ingest_summaries=summaries, missing_commands=missing)
    with tempfile.TemporaryDirectory(prefix="concord-links-") as scratch:
        online_links = None
        if export_after_ingest:
            online_path = Path(scratch) / "online.csv"
            _timed(timings, "export_links (online)", env, "export_links", "--out", str(online_path))
            online_links = links_read(online_path)
        _timed(timings, "mpi_train", env, "mpi_train")
        _timed(timings, "mpi_relink", env, "mpi_relink")
        export_path = Path(scratch) / "links.csv"
        _timed(timings, "export_links", env, "export_links", "--out", str(export_path))
        links = links_read(export_path)
    return RealPathRun(links=links, timings=timings, ingest_summaries=summaries, online_links=online_links)


def ingest_summary_lines(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per source; quarantined payloads with their reason and first problems (no values)."""
    lines = []
    for slug, summary in summaries.items():
        counts = summary["payloads"]
        stored = summary.get("resources_stored", {})
        lines.append(
            f"  {slug}: {counts['received']} payloads, {counts['accepted']} accepted, "
            f"{counts['quarantined']} quarantined, {counts['duplicate']} duplicate; "
            f"{stored.get('Patient', 0)} Patient resources stored"
        )
        for quarantined in summary.get("quarantined", [])[:5]:
            lines.append(
                f"    quarantined {Path(quarantined['file']).name}: {quarantined['reason']} "
                f"({quarantined.get('problem_count', 0)} problems in all)"
            )
    return lines


# Reading an export -----------------------------------------------------------------------------------


def patient_of(links: Iterable[LinkRow]) -> dict[RecordKey, str]:
    return {link.key: link.patient_id for link in links}


def automatic_patient_of(links: Iterable[LinkRow]) -> dict[RecordKey, str]:
    """Records as linked without a person looking: POSSIBLE_MATCH records (sent to review) left out."""
    return {link.key: link.patient_id for link in links if link.state != "POSSIBLE_MATCH"}


def automatic_link_precision(
    links: Sequence[LinkRow], true_cluster_of: Mapping[RecordKey, Hashable]
) -> dict[str, float]:
    """Pairwise scores of the links made automatically, on the records not sent to review."""
    automatic = automatic_patient_of(links)
    return cluster_pairwise_scores(
        automatic, {key: true_cluster_of[key] for key in automatic if key in true_cluster_of}
    )


def precision_verdict(scores: Mapping[str, float], *, target: float) -> str:
    """The precision against its target; with no links at all there is nothing to be precise about."""
    if not scores["tp"] + scores["fp"]:
        return f"n/a, no links made (target >= {target} not measurable)"
    verdict = "met" if scores["precision"] >= target else "NOT met"
    return f"{scores['precision']:.4f} (target >= {target}: {verdict})"


def state_counts(links: Iterable[LinkRow]) -> Counter[str]:
    return Counter(link.state for link in links)


def timing_lines(timings: Mapping[str, float]) -> list[str]:
    return [f"  {step:<28} {seconds:8.1f} s" for step, seconds in timings.items()]
