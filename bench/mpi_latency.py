"""Patient index speed at scale: matching one new record online, and re-linking every record in bulk.

    .venv/bin/python bench/mpi_latency.py [--records 1000000] [--new-records 2000] [--seed 0] [--profile]
        [--online-only]

1. Recreates the database "bench_mpi_latency", migrates it and loads ``--records`` synthetic source
   records straight into it with COPY: ingesting a million records through the pipeline would take
   hours, and this benchmark measures matching, not the first load. ``bench/mpi_population.py`` says
   how the people and records are drawn (``patients.synthetic``: realistic names, birth dates, phones,
   postal codes, look-alikes, about 2.4 records a person in three sources, the generator's
   disagreements) and what is written (records with their features and blocking keys, golden patients
   and links taken from the truth).
2. Online: ``--new-records`` records kept out of the load arrive one at a time, half of them one more
   record of a person the index knows, half the only record of a person it has never seen. For each,
   times candidate lookup + scoring + decision (``candidates_score`` and ``decide``, reads only: what
   the 10 ms target is about), then the whole of ``source_patients_link`` in its own transaction
   (features, advisory locks, lookup, scoring, decision, link and review writes, golden record). Prints
   p50/p95/p99 of both, the candidate counts, and how the new records were linked.
3. Bulk: times Splink alone (``records_frame`` + ``pairs_score`` with the model and threshold a re-link
   uses) and then ``relink_all`` over every record, phase by phase.

With ``--profile``, online linking and the re-link are sampled with py-spy (``pip install py-spy``) and
the functions they spend their time in are printed.

Figures depend on the machine (cores, PostgreSQL's settings, other load): the script prints them.
Prints every figure; asserts nothing (speed targets live here, never in tests).
"""

import argparse
import contextlib
import gc
import itertools
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import database_recreate, run_manage  # noqa: E402

DATABASE = "bench_mpi_latency"
TARGET_P95_MS = 10.0


def percentiles_line(label: str, seconds: Sequence[float]) -> str:
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return (
        f"  {label:<44} p50 {at(0.50):7.2f} ms   p95 {at(0.95):7.2f} ms   p99 {at(0.99):7.2f} ms"
        f"   max {1000 * ordered[-1]:7.1f} ms   mean {1000 * statistics.fmean(ordered):6.2f} ms"
    )


def counts_line(label: str, values: Sequence[int]) -> str:
    ordered = sorted(values)

    def at(share: float) -> int:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return (
        f"  {label:<44} p50 {at(0.50):5d}   p95 {at(0.95):5d}   p99 {at(0.99):5d}   max {ordered[-1]:5d}"
        f"   mean {statistics.fmean(ordered):6.1f}"
    )


class MemoryWatch:
    """Peak resident memory of this process in each step, sampled by a thread.

    ``ru_maxrss`` only knows the overall peak. DuckDB's memory is in this process too; PostgreSQL's is not.
    """

    def __init__(self) -> None:
        self.current = "start"
        self.peaks: dict[str, float] = {}
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        statm = Path("/proc/self/statm")
        while True:
            resident = int(statm.read_text().split()[1]) * self.page_size / 1024**3
            self.peaks[self.current] = max(self.peaks.get(self.current, 0.0), resident)
            time.sleep(0.2)

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.current = label
        try:
            yield
        finally:
            self.current = "between steps"

    def report(self) -> str:
        peaks = ", ".join(f"{label} {gigabytes:.1f}" for label, gigabytes in self.peaks.items())
        overall = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB
        return f"Peak memory of this process: {overall:.1f} GB; by step (GB): {peaks}"


def django_start(database_url: str) -> None:
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "CELERY_BROKER_URL": "",
            "CELERY_RESULT_BACKEND": "",
            "DEBUG": "false",
        }
    )
    import django

    django.setup()


def population_build(options: argparse.Namespace, database_url: str) -> Any:
    from bench.mpi_population import HoldOut, population_load

    # Spread the held-out people over the whole population, with a margin so that each kind fills up.
    people_expected = options.records / 2.4
    every = max(3, int(0.85 * people_expected / max(1, options.new_records // 2)))
    started = time.perf_counter()
    loaded = population_load(
        database_url,
        records=options.records,
        seed=options.seed,
        hold_out=HoldOut(every=every, limit=options.new_records // 2),
        workers=options.workers,
        progress=lambda message: print(f"  {message}", file=sys.stderr, flush=True),
    )
    elapsed = time.perf_counter() - started
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in loaded.seconds.items())
    print(
        f"Load: {loaded.records:,} records of {loaded.people:,} people "
        f"({loaded.records / loaded.people:.2f} a person), {loaded.match_keys:,} blocking keys "
        f"({loaded.match_keys / loaded.records:.1f} a record) in {elapsed:.0f} s ({phases})"
    )
    return loaded


def key_sizes_print() -> None:
    """How many records share a blocking key, by kind of key: what candidate lookup has to wade through."""
    from django.db import connection

    from patients.matching.linking import MAX_CANDIDATES

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT split_part(key, ':', 1), count(*), avg(records), max(records), "
            "count(*) FILTER (WHERE records > %s), sum(records * (records - 1) / 2) FROM (SELECT key, "
            "count(*) AS records FROM patients_matchkey GROUP BY key) AS sizes GROUP BY 1 ORDER BY 1",
            [MAX_CANDIDATES],
        )
        rows = cursor.fetchall()
    print(
        f"Blocking keys by kind: keys, records a key (mean, largest), keys over {MAX_CANDIDATES} records, "
        "pairs of records sharing a key (what Splink compares, before removing pairs found twice)"
    )
    for kind, keys, mean, largest, over, pairs in rows:
        print(
            f"  {kind:<3} {keys:>10,} keys  {mean:6.1f} mean  {largest:>7,} largest  {over:>6,} over"
            f"  {pairs:>14,} pairs"
        )


def new_records_store(held_out: list[tuple[str, Any]], *, seed: int) -> list[tuple[str, int, Any]]:
    """Store the held-out records unlinked, as ingestion stores them before linking; (kind, person, row)."""
    from patients.ingest.extract import patient_columns
    from patients.models import InboundPayload, Source, SourcePatient

    sources = {source.slug: source for source in Source.objects.all()}
    payloads = {payload.source_id: payload for payload in InboundPayload.objects.all()}
    arrivals = list(held_out)
    random.Random(f"bench-mpi:{seed}:arrivals").shuffle(arrivals)
    rows = []
    for _, record in arrivals:
        resource_json = record.resource
        source = sources[record.source]
        rows.append(
            SourcePatient(
                source=source,
                source_record_id=record.source_record_id,
                content_sha256=record.content_sha256,
                resource=resource_json,
                payload=payloads[source.pk],
                **patient_columns(resource_json),
            )
        )
    SourcePatient.objects.bulk_create(rows, batch_size=500)
    return [(kind, record.person, row) for (kind, record), row in zip(arrivals, rows, strict=True)]


def match_only(record: Any, *, model: Any) -> tuple[float, float, int, Any]:
    """(features seconds, lookup + scoring + decision seconds, candidates scored, decision): reads only.

    The same calls ``record_link`` makes before it writes anything.
    """
    from patients.matching.decisions import decide
    from patients.matching.features import blocking_keys
    from patients.matching.linking import candidates_score, decision_members, record_features
    from patients.models import MatchReview

    started = time.perf_counter()
    features = record_features(record)
    keys = blocking_keys(features)
    featured = time.perf_counter()
    scored = candidates_score(model=model, record_id=record.pk, features=features, keys=keys)
    rejected = frozenset(
        MatchReview.objects.filter(source_patient=record, status=MatchReview.Status.REJECTED).values_list(
            "patient_id", flat=True
        )
    )
    decision = decide(
        model=model,
        record_id=record.pk,
        source_id=record.source_id,
        features=features,
        candidates=scored,
        members=decision_members(model=model, scored=scored, source_id=record.source_id, features=features),
        rejected_patients=rejected,
    )
    finished = time.perf_counter()
    return featured - started, finished - featured, len(scored), decision


def online(arrivals: list[tuple[str, int, Any]], *, profile: bool) -> None:
    from django.db import transaction

    from patients.matching.linking import MAX_CANDIDATES, active_weights, source_patients_link
    from patients.models import PatientLink

    model = active_weights()
    for _, _, record in arrivals[:50]:  # warm-up: imports, caches, query plans
        match_only(record, model=model)
    features_seconds, match_seconds, candidates = [], [], []
    for _, _, record in arrivals:
        features_took, match_took, candidate_count, _ = match_only(record, model=model)
        features_seconds.append(features_took)
        match_seconds.append(match_took)
        candidates.append(candidate_count)

    link_seconds = []
    with sampled(
        enabled=profile, root="source_patients_link", title="Where online linking spends its time"
    ) as found:
        for _, _, record in arrivals:
            started = time.perf_counter()
            with transaction.atomic():
                source_patients_link([record])
            link_seconds.append(time.perf_counter() - started)

    print(f"\nOnline: {len(arrivals):,} new records, one at a time (each link in its own transaction)")
    print(percentiles_line("features + blocking keys (in memory)", features_seconds))
    print(percentiles_line("candidate lookup + scoring + decision", match_seconds))
    print(percentiles_line("source_patients_link (all of it, committed)", link_seconds))
    print(counts_line("candidates scored per record", candidates))
    p95 = 1000 * sorted(match_seconds)[int(0.95 * len(match_seconds))]
    verdict = "met" if p95 <= TARGET_P95_MS else "NOT met"
    print(f"  Target: lookup + scoring + decision p95 <= {TARGET_P95_MS:.0f} ms: {verdict} ({p95:.2f} ms)")
    # A key shared by more records than the cap (a very common name) caps the candidates: slow and partial.
    capped = [count >= MAX_CANDIDATES for count in candidates]
    if any(capped):
        print(
            f"  {sum(capped):,} records ({100 * sum(capped) / len(capped):.1f}%) reached the cap of "
            f"{MAX_CANDIDATES} candidates; without them:"
        )
        uncapped = [index for index, was_capped in enumerate(capped) if not was_capped]
        print(percentiles_line("  lookup + scoring + decision", [match_seconds[i] for i in uncapped]))
        print(percentiles_line("  source_patients_link", [link_seconds[i] for i in uncapped]))

    rows = PatientLink.objects.filter(source_patient__in=[record for _, _, record in arrivals]).values_list(
        "source_patient_id", "patient_id", "state"
    )
    linked = {record_id: (patient_id, state) for record_id, patient_id, state in rows}
    outcomes: Counter[tuple[str, str]] = Counter()
    for (kind, person, record), was_capped in zip(arrivals, capped, strict=True):
        patient_id, state = linked[record.pk]
        if state == "MATCH":
            state = (
                "MATCH, right patient" if kind == "known person" and patient_id == person else "MATCH, WRONG"
            )
        outcomes[(kind, state + (" (capped)" if was_capped else ""))] += 1
    print("  How they were linked (capped: the lookup reached the cap):")
    for kind in ("known person", "new person"):
        total = sum(count for (found_kind, _), count in outcomes.items() if found_kind == kind)
        parts = ", ".join(
            f"{label} {count}"
            for (found_kind, label), count in sorted(outcomes.items())
            if found_kind == kind
        )
        print(f"    {kind} ({total}): {parts}")
    if found.lines:
        print("\n".join(found.lines))


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (DuckDB's included): less sensitive to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def splink_alone(label: str) -> float:
    """Seconds of Splink scoring every record as ``relink_all`` asks it to; prints its phases."""
    from patients.matching.linking import active_weights
    from patients.matching.relinking import _splink_settings
    from patients.matching.training import pairs_score, records_frame
    from patients.models import SourcePatient

    model = active_weights()
    started = time.perf_counter()
    records = list(SourcePatient.objects.order_by("pk").values_list("pk", "match_features"))
    read = time.perf_counter()
    cpu_started = cpu_seconds()
    frame = records_frame(records)
    framed = time.perf_counter()
    pairs = sum(
        1
        for _ in pairs_score(
            frame,
            settings=_splink_settings(model),
            frequencies=model.term_frequencies,
            threshold_weight=model.review_weight,
        )
    )
    scored = time.perf_counter()
    cpu = cpu_seconds() - cpu_started
    print(f"\nSplink alone, {label} ({len(records):,} records, threshold weight {model.review_weight:.2f}):")
    print(f"  read features from PostgreSQL (not counted)  {read - started:7.1f} s")
    print(f"  records_frame                                {framed - read:7.1f} s")
    print(f"  pairs_score (DuckDB)                         {scored - framed:7.1f} s   {pairs:,} pairs")
    print(f"  Splink alone                                 {scored - read:7.1f} s   CPU {cpu:.1f} s")
    del records, frame
    gc.collect()
    return scored - read


_PROJECT_PREFIXES = ("patients/", "core/", "governance/")


@dataclass
class Profile:
    """Where a function spent its time while py-spy sampled it: lines to print."""

    lines: list[str] = field(default_factory=list)


@contextlib.contextmanager
def sampled(*, enabled: bool, root: str, title: str) -> Iterator[Profile]:
    """Sample this process with py-spy while the block runs; then summarize the stacks under ``root``.

    Idle samples count: waiting on PostgreSQL or DuckDB is part of the cost.
    """
    profile = Profile()
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not enabled or not Path(binary).exists():
        if enabled:
            profile.lines.append("(py-spy not found: pip install py-spy to profile)")
        yield profile
        return
    with tempfile.TemporaryDirectory(prefix="concord-bench-") as scratch:
        output = Path(scratch) / "stacks.txt"
        process = subprocess.Popen(
            [binary, "record", "--pid", str(os.getpid()), "--rate", "25", "--idle", "--nonblocking",
             "--full-filenames", "--format", "raw", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)  # attached before the work starts
        try:
            yield profile
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=300)
        profile.lines = profile_lines(output, root=root, title=title)


def _frame_name(frame: str, *, line: bool = False) -> str:
    """``f (/venv/site-packages/django/y.py:80)`` -> ``f (django/y.py)`` (``:80`` kept with ``line``)."""
    name, _, where = frame.partition(" (")
    path, _, number = where.removesuffix(")").rpartition(":")
    path = re.sub(r"^.*/(site-packages|python3\.\d+)/", "", path).removeprefix(f"{ROOT}/")
    return f"{name} ({path}:{number})" if line else f"{name} ({path})"


def _is_project(frame: str) -> bool:
    return frame.partition(" (")[2].startswith(_PROJECT_PREFIXES)


def profile_lines(path: Path, *, root: str, title: str, top: int = 25) -> list[str]:
    """Total and own time by function, from py-spy's collapsed stacks, of the samples inside ``root``."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    owners: dict[str, Counter[str]] = defaultdict(Counter)
    samples = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count_text = line.rpartition(" ")
        raw = [frame for frame in stack.split(";") if " (" in frame]
        frames = [_frame_name(frame) for frame in raw]
        if not count_text.isdigit() or not any(frame.startswith(f"{root} (") for frame in frames):
            continue
        count = int(count_text)
        samples += count
        own[frames[-1]] += count
        # The innermost project line the function runs under: which query, which loop.
        project = [_frame_name(frame, line=True) for frame in raw if _is_project(_frame_name(frame))]
        if project and not _is_project(frames[-1]):
            owners[frames[-1]][project[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return []
    lines = [f"\n{title} (py-spy, {samples:,} samples at 25 per second, waiting included):"]
    lines.append("  Total time of project functions (with what they call), 1% and more:")
    for frame, count in total.most_common():
        if _is_project(frame) and count >= 0.01 * samples:
            lines.append(f"    {100 * count / samples:5.1f}%  {frame}")
    lines.append(f"  Own time, the {top} busiest functions (<- the project line they run under):")
    for frame, count in own.most_common(top):
        owner = owners[frame].most_common(1)
        lines.append(f"    {100 * count / samples:5.1f}%  {frame}" + (f"  <- {owner[0][0]}" if owner else ""))
    return lines


def relink(*, profile: bool) -> float:
    from patients.matching.relinking import relink_all

    marks: list[tuple[float, str, int, int]] = []

    def progress(step: str, done: int, total: int) -> None:
        marks.append((time.perf_counter(), step, done, total))
        if step != "deciding" or done % 100_000 == 0:
            print(f"  relink: {step} {done:,}/{total:,}", file=sys.stderr, flush=True)

    with sampled(enabled=profile, root="relink_all", title="Where relink_all spends its time") as found:
        started = time.perf_counter()
        cpu_started = cpu_seconds()
        result = relink_all(progress=progress)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_started
    print(f"\nBulk re-link (relink_all, {result.records:,} records): {elapsed:.1f} s, CPU {cpu:.1f} s")
    # The phases, from the progress reports relink_all makes between them.
    phase_marks = [(started, "start")]
    deciding = [mark for mark in marks if mark[1] == "deciding"]
    for moment, step, done, total in marks:
        if (step, done) == ("scoring pairs", 0):
            phase_marks.append((moment, "read records and features"))
        elif (step, done) == ("scoring pairs", 1):
            phase_marks.append((moment, "Splink pairs (records_frame + pairs_score)"))
        elif (step, done) == ("golden records", 0):
            if deciding:
                phase_marks.append((deciding[-1][0], f"decide (to record {deciding[-1][2]:,})"))
            phase_marks.append((moment, "decide the rest, write links and reviews"))
        elif step == "golden records" and done == total:
            phase_marks.append((moment, f"golden records ({total:,} patients)"))
    phase_marks.append((started + elapsed, "the rest"))
    for (before, _), (after, label) in itertools.pairwise(phase_marks):
        print(f"  {label:<48} {after - before:7.1f} s")
    print(
        f"  pairs scored {result.pairs_scored:,}, links changed {result.links_changed:,}, "
        f"states {dict(result.states)}, patients created {result.patients_created:,}, "
        f"retired {result.patients_retired:,}, engine disagreements {result.engine_disagreements}"
    )
    if found.lines:
        print("\n".join(found.lines))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="Source records loaded (default 1M).")
    parser.add_argument("--new-records", type=int, default=2_000, help="New records matched online.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="Processes drawing the population.")
    parser.add_argument(
        "--profile", action="store_true", help="Sample online linking and the re-link with py-spy."
    )
    parser.add_argument(
        "--online-only", action="store_true", help="Stop after online matching (no Splink, no re-link)."
    )
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="Server URL.")
    options = parser.parse_args()

    database_url = f"{options.postgres}/{DATABASE}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "false",
    }
    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    database_recreate(f"{options.postgres}/postgres", DATABASE)
    run_manage(env, "migrate", "--no-input", "-v0")
    django_start(database_url)
    memory = MemoryWatch()
    with memory.step("load"):
        loaded = population_build(options, database_url)
    key_sizes_print()
    arrivals = new_records_store(loaded.held_out, seed=options.seed)
    del loaded
    with memory.step("online"):
        online(arrivals, profile=options.profile)
    del arrivals
    gc.collect()
    if options.online_only:
        print(memory.report())
        return

    # Splink alone runs before and after the re-link: the spread shows how much other load moved figures.
    with memory.step("Splink alone"):
        splink_before = splink_alone("before the re-link")
    with memory.step("re-link"):
        relink_seconds = relink(profile=options.profile)
    with memory.step("Splink alone again"):
        splink_after = splink_alone("after the re-link")
    ratios = f"{relink_seconds / splink_before:.1f} / {relink_seconds / splink_after:.1f}"
    print(
        f"\nRe-link {relink_seconds:.1f} s vs Splink alone {splink_before:.1f} s / {splink_after:.1f} s, "
        f"ratio {ratios} (target: the same order of time)"
    )
    print(memory.report())


if __name__ == "__main__":
    main()
