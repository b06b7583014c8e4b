"""Ingestion throughput on PostgreSQL with a real Celery worker, against the COPY floor of the same machine.

    .venv/bin/python bench/ingest.py [--copies 6] [--workers 2]

1. Clones the shared Synthea patients (../shared/data/synthea-r4) ``--copies`` times with new ids and
   perturbed demographics (85 patients x 6 = 510 patients, about 127,000 resources).
2. Recreates a benchmark database, migrates it, starts ``celery worker`` (prefork, ``--workers``
   processes) on a Redis broker, and times ``manage.py ingest`` over the clones: landing every file,
   then waiting until the workers have parsed, validated, normalized and stored every payload.
3. Times PostgreSQL COPYing the same resources' raw JSON into a bare JSONB table: the floor.
4. Profiles a sample of bundles in-process, stage by stage, to show where the time goes.

Prints every figure; asserts nothing (speed targets live here, never in tests).
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4"
sys.path.insert(0, str(ROOT))

from bench.support import database_recreate, run_manage  # noqa: E402


def worker_start(env: dict[str, str], *, workers: int, queue_log: Path) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", f"--concurrency={workers}",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h", f"--loglevel={env['LOG_LEVEL']}",
        ],
        cwd=ROOT, env=env, stdout=queue_log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    from celery import Celery

    client = Celery(
        "bench", broker=env["CELERY_BROKER_URL"], backend=env["CELERY_BROKER_URL"], set_as_current=False
    )
    client.send_task("core.worker_ping", args=["ready"]).get(timeout=120)
    client.close()
    return worker


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(worker_pid: int) -> dict[str, float]:
    """CPU seconds so far of the Celery worker processes and of every PostgreSQL server process."""
    children = subprocess.run(["pgrep", "-P", str(worker_pid)], capture_output=True, text=True, check=False)
    postgres = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True, check=False)
    return {
        "celery workers": sum(_cpu_seconds(int(pid)) for pid in [str(worker_pid), *children.stdout.split()]),
        "postgresql": sum(_cpu_seconds(int(pid)) for pid in postgres.stdout.split()),
    }


def resources_in(directory: Path) -> list[str]:
    """Each resource's JSON text, as a connector would hand it over."""
    texts = []
    for path in sorted(directory.glob("*.json")):
        for entry in json.loads(path.read_bytes()).get("entry", []):
            texts.append(json.dumps(entry["resource"]))
    return texts


def copy_floor(database_url: str, texts: list[str]) -> float:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_floor")
        connection.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, document jsonb NOT NULL)")
        started = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy("COPY bench_floor (document) FROM STDIN") as copy:
            for text in texts:
                copy.write_row((text,))
        elapsed = time.perf_counter() - started
        connection.execute("DROP TABLE bench_floor")
    return elapsed


def profile_stages(env: dict[str, str], sample: list[Path]) -> None:
    """In-process, stage by stage, on the benchmark database, for a sample of the bundles."""
    os.environ.update({key: env[key] for key in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")})
    os.environ["CELERY_BROKER_URL"] = ""
    import django

    django.setup()
    from django.db import transaction

    from patients.ingest.fhir_input import fhir_payload_parse
    from patients.ingest.processing import _normalized, payload_receive
    from patients.ingest.store import entries_store, identifier_lookup
    from patients.services import source_ensure

    source, _ = source_ensure(actor=None, slug="bench-profile")
    bodies = [path.read_bytes() for path in sample]
    fhir_payload_parse(bodies[0], lookup=identifier_lookup(source))  # import and schema warm-up
    stages = {"land (store raw bytes)": 0.0, "parse + strict validation": 0.0, "normalize": 0.0, "store": 0.0}
    count = 0
    profiler = cProfile.Profile()
    profiler.enable()
    for body in bodies:
        started = time.perf_counter()
        payload, _ = payload_receive(source=source, body=body, format="fhir", channel="file", enqueue=False)
        stages["land (store raw bytes)"] += time.perf_counter() - started
        started = time.perf_counter()
        parsed = fhir_payload_parse(body, lookup=identifier_lookup(source))
        stages["parse + strict validation"] += time.perf_counter() - started
        started = time.perf_counter()
        entries = _normalized(parsed.entries, default_timezone="UTC")
        stages["normalize"] += time.perf_counter() - started
        started = time.perf_counter()
        with transaction.atomic():
            entries_store(source=source, payload=payload, entries=entries)
        stages["store"] += time.perf_counter() - started
        count += len(entries)
    profiler.disable()
    total = sum(stages.values())
    print(
        f"\nWhere the time goes: {count:,} resources from {len(bodies)} bundles in one process (cProfile on)"
    )
    for stage, seconds in stages.items():
        print(
            f"  {stage:<28} {seconds:6.2f} s  {100 * seconds / total:5.1f}%  {count / seconds:8,.0f} resources/s"
        )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    print("\nTop functions by own time:")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:4000])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--copies", type=int, default=6, help="Clones of each Synthea patient (default 6: 510)."
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2).")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="Server URL.")
    parser.add_argument("--database", default="concord_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--profile-bundles", type=int, default=20)
    options = parser.parse_args()
    if not SYNTHEA.is_dir():
        sys.exit(f"needs the shared Synthea bundles at {SYNTHEA}")

    database_url = f"{options.postgres}/{options.database}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": options.redis,
        "CELERY_RESULT_BACKEND": options.redis,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "false",
    }
    from patients.synthetic import write_synthea_clones

    with tempfile.TemporaryDirectory(prefix="concord-bench-") as scratch:
        clones = Path(scratch) / "clones"
        started = time.perf_counter()
        write_synthea_clones(SYNTHEA, clones, copies=options.copies, seed=7)
        files = sorted(clones.glob("*.json"))
        texts = resources_in(clones)
        print(
            f"Data: {len(files)} bundles, {len(texts):,} resources, {sum(p.stat().st_size for p in files) / 1e6:.0f} MB "
            f"(cloned in {time.perf_counter() - started:.1f} s)"
        )

        database_recreate(f"{options.postgres}/postgres", options.database)
        run_manage(env, "migrate", "--no-input", "-v0")
        worker_log = Path(os.environ.get("BENCH_WORKER_LOG", Path(scratch) / "worker.log"))
        worker = worker_start(env, workers=options.workers, queue_log=worker_log)
        try:
            cpu_before = cpu_by_role(worker.pid)
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            summary = json.loads(run_manage(env, "ingest", "--source", "bench", "--json", str(clones)))
            elapsed = time.perf_counter() - started
            cpu_after = cpu_by_role(worker.pid)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        stored = summary["resources_stored_total"] + sum(summary["resources_unchanged"].values())
        counts = summary["payloads"]
        print(
            f"Payloads: {counts['received']} received, {counts['accepted']} accepted, "
            f"{counts['quarantined']} quarantined, {counts['duplicate']} duplicate"
        )
        pipeline_rate = stored / elapsed
        print(
            f"Pipeline ({options.workers} Celery worker processes, PostgreSQL): {stored:,} resources in "
            f"{elapsed:.1f} s = {pipeline_rate:,.0f} resources/s"
        )

        cpu = {role: cpu_after[role] - cpu_before[role] for role in cpu_after}
        cpu["ingest command (landing)"] = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        available = elapsed * (os.cpu_count() or 1)
        print(f"CPU during the run ({os.cpu_count()} cores, {available:.0f} core-seconds available):")
        for role, seconds in cpu.items():
            print(f"  {role:<26} {seconds:6.1f} s  {1e6 * seconds / stored:5.0f} us/resource")
        print(f"  {'idle or other':<26} {available - sum(cpu.values()):6.1f} s")

        floor_seconds = copy_floor(database_url, texts)
        floor_rate = len(texts) / floor_seconds
        print(
            f"Floor (COPY raw JSON into a bare JSONB table): {len(texts):,} in {floor_seconds:.1f} s = {floor_rate:,.0f} resources/s"
        )
        print(f"Ratio pipeline / floor: {pipeline_rate / floor_rate:.3f} (target >= 0.100)")
        print(f"Target >= 3,000 resources/s: {'met' if pipeline_rate >= 3000 else 'NOT met'}")

        profile_stages(env, files[: options.profile_bundles])


if __name__ == "__main__":
    main()
