"""The patient screen under load: patient page, search and $everything against gunicorn, beside a floor.

    .venv/bin/python bench/patient_view.py [--people 100000] [--histories 10000] [--requests 800] [--reuse]

1. Recreates the database "bench_patient_view" and fills it as ``bench/patient_view_data.py`` says:
   about 100,000 golden patients (generator people COPYed in, Synthea clones ingested through the
   pipeline), clinical histories copied onto ``--histories`` of them, and one patient with about 2,000
   resources from three sources, linked online at ingestion. Then ``VACUUM ANALYZE``, the demo users
   (``setup_demo``) and an API token for the coordinator. ``--reuse`` measures an existing database.
2. In-process: the SQL query count of the patient page for a small, a typical and the big patient (it
   must not grow with the record), and where the big patient's page spends its time (stages, cProfile).
3. Starts gunicorn (``--workers`` sync workers, or gthread workers of ``--threads`` threads; settings
   ``config.settings.local`` with DEBUG off: the production overlay only adds TLS-only cookies and
   redirects and a static manifest, which a plain-HTTP local run cannot use), logs ``--clients`` clients in as the care coordinator (a session each,
   through the login form), and for each endpoint in turn runs ``--requests`` requests spread over the
   clients, each client sending its next request when the previous one is answered (no think time),
   after a warm-up. Prints p50/p95/p99 per endpoint, the patient page's ratio to the floor (a trivial
   logged-in page on the same server) and the targets beside them, CPU per request of the gunicorn
   workers and of this client, and the load average before and after.

Search is measured as the search box sends it while typing (``HX-Request``: the results fragment), and
$everything through a bearer token as an API client would, first page (default ``_count``).
Prints every figure; asserts nothing (speed targets live here, never in tests).
"""

import argparse
import cProfile
import functools
import http.client
import io
import itertools
import os
import pstats
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import patient_view_data as data  # noqa: E402
from bench.support import database_recreate, run_manage  # noqa: E402

DATABASE = "bench_patient_view"
USERNAME = "coordinator"
PAGE_P95_TARGET_MS = 150.0
PAGE_FLOOR_RATIO_TARGET = 3.0
SEARCH_P95_TARGET_MS = 50.0


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} cores)"


def django_start(env: dict[str, str]) -> None:
    os.environ.update(env)
    # The in-process test client sends Host: testserver.
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
    import django

    django.setup()


# Building the database


def database_build(options: argparse.Namespace, env: dict[str, str], database_url: str) -> None:
    seconds: dict[str, float] = {}
    database_recreate(f"{options.postgres}/postgres", DATABASE)
    run_manage(env, "migrate", "--no-input", "-v0")
    # The clones (every bundle but the big patient's, each ``--synthea-copies`` times) and the big patient.
    generator_people = options.people - (data.patient_bundle_count() - 1) * options.synthea_copies - 1
    loaded = data.timed(
        "generator people (COPY)",
        seconds,
        lambda: data.population_load(database_url, people=generator_people, seed=options.seed, progress=log),
    )
    print(f"Loaded {loaded.people:,} generator people, {loaded.records:,} records (COPY)")
    run_manage(env, "setup_demo")
    data.sources_create()
    with tempfile.TemporaryDirectory(prefix="concord-bench-patient-view-") as scratch:
        clones = Path(scratch) / "clones"
        big_patient = data.largest_bundle()
        bundles = data.base_clones_write(
            clones, copies=options.synthea_copies, seed=options.seed, leave_out=big_patient
        )
        directories, big_resources = data.big_patient_bundles_write(
            Path(scratch) / "big", seed=options.seed + 1
        )
        worker = data.worker_run(env, Path(scratch) / "worker.log")
        try:
            summary = data.timed(
                "Synthea clones (pipeline)",
                seconds,
                lambda: data.ingest(env, data.SYNTHEA_SOURCE[0], clones),
            )
            print(
                f"Ingested {bundles} Synthea clones into {data.SYNTHEA_SOURCE[0]} through the pipeline: "
                f"{summary['resources_stored_total']:,} resources"
            )
            for slug, directory in directories.items():
                data.timed(
                    f"big patient: {slug} (pipeline)",
                    seconds,
                    functools.partial(data.ingest, env, slug, directory),
                )
            print(
                f"Ingested the big patient ({big_patient.name}) as {len(directories)} sources through the "
                f"pipeline: {big_resources:,} entries"
            )
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    data.timed("golden records of generator people", seconds, lambda: data.golden_records_compute(log))
    copied = data.timed(
        "clinical histories (INSERT ... SELECT)",
        seconds,
        lambda: data.histories_copy(database_url, histories=options.histories, progress=log),
    )
    print(f"Copied {copied:,} resources onto {options.histories:,} generator people's hospital records")
    data.timed("VACUUM ANALYZE", seconds, lambda: data.vacuum_analyze(database_url))
    print("Build: " + ", ".join(f"{label} {value:.0f} s" for label, value in seconds.items()))


@dataclass
class Subjects:
    """Who and what is measured, read from the database."""

    big: str  # golden patient external id
    big_resources: int
    small: str
    small_resources: int
    typical: list[str]
    typical_resources: int
    searches: dict[str, list[str]] = field(default_factory=dict)


def data_summary() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM patients_patient WHERE is_active), "
            "(SELECT count(*) FROM patients_sourcepatient), (SELECT count(*) FROM patients_sourceresource), "
            "(SELECT count(*) FROM patients_matchkey), pg_size_pretty(pg_database_size(current_database()))"
        )
        patients, records, resources, keys, size = cursor.fetchone()
    print(
        f"Database {DATABASE}: {patients:,} golden patients, {records:,} source records, "
        f"{resources:,} source resources, {keys:,} blocking keys, {size}"
    )


def _resource_counts(patient_ids: Sequence[int]) -> dict[int, int]:
    from django.db.models import Count

    from patients.models import SourceResource

    rows = (
        SourceResource.objects.filter(patient__link__patient_id__in=patient_ids)
        .values("patient__link__patient_id")
        .annotate(n=Count("pk"))
    )
    return {row["patient__link__patient_id"]: row["n"] for row in rows}


def subjects_find(seed: int) -> Subjects:
    from patients.models import Patient, PatientLink, SourceIdentifier
    from patients.synthetic.names import one_character_typo

    big_links = list(
        PatientLink.objects.filter(
            source_patient__source__slug=data.BIG_PATIENT_MARKER_SOURCE
        ).select_related("patient")
    )
    if len(big_links) != 1:
        sys.exit(f"expected one patient in {data.BIG_PATIENT_MARKER_SOURCE}, found {len(big_links)}")
    big = big_links[0].patient
    links = list(
        PatientLink.objects.filter(patient=big).select_related("source_patient__source").order_by("pk")
    )
    for link in links:
        print(
            f"  big patient record {link.source_patient.source.slug}/{link.source_patient.source_record_id}: "
            f"{link.state} ({link.origin}, score {link.score}) {link.reason}"
        )
    slugs = {link.source_patient.source.slug for link in links}
    if slugs != {slug for slug, _, _ in data.BIG_PATIENT_SOURCES}:
        sys.exit(f"the big patient's records were not all linked to one golden patient: {sorted(slugs)}")
    synthea_ids = list(
        PatientLink.objects.filter(source_patient__source__slug=data.SYNTHEA_SOURCE[0])
        .order_by("patient_id")
        .values_list("patient_id", flat=True)
    )
    counts = _resource_counts([big.pk, *synthea_ids])
    small_id = min(synthea_ids, key=lambda pk: counts.get(pk, 0))
    randomness = random.Random(seed)
    typical_ids = randomness.sample(synthea_ids, min(40, len(synthea_ids)))
    external = dict(Patient.objects.filter(pk__in=[small_id, *typical_ids]).values_list("pk", "external_id"))
    subjects = Subjects(
        big=str(big.external_id),
        big_resources=counts[big.pk],
        small=str(external[small_id]),
        small_resources=counts.get(small_id, 0),
        typical=[str(external[pk]) for pk in typical_ids],
        typical_resources=round(statistics.fmean(counts.get(pk, 0) for pk in typical_ids)),
    )
    people = list(
        Patient.objects.filter(is_active=True)
        .exclude(given_names="")
        .exclude(family_name="")
        .order_by("?")
        .values_list("given_names", "family_name", "phone")[:200]
    )
    subjects.searches["name with a typo"] = [
        f"{given.split()[0]} {one_character_typo(family, randomness=randomness)}"
        for given, family, _ in people
    ]
    subjects.searches["family name alone"] = [family for _, family, _ in people]
    subjects.searches["phone, another format"] = [
        f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}" for _, _, phone in people if phone.startswith("+1")
    ]
    subjects.searches["record number"] = list(
        SourceIdentifier.objects.filter(resource_type="Patient", system=data.SYNTHEA_RECORD_NUMBER_SYSTEM)
        .order_by("value")
        .values_list("value", flat=True)[:200]
    )
    return subjects


# In-process: query counts and where the time goes


class QueryTimer:
    """A Django execute wrapper: every statement and its time, results transferred (psycopg fetches them all)."""

    def __init__(self) -> None:
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((time.perf_counter() - started, sql))


def page_query_counts(subjects: Subjects) -> None:
    from django.contrib.auth.models import User
    from django.core.cache import caches
    from django.db import connection
    from django.test import Client

    from patients.page_cache import CACHE_ALIAS

    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    print("\nPatient page SQL queries (in-process, the same code the server runs):")
    for label, external_id, resources in (
        ("small patient", subjects.small, subjects.small_resources),
        ("typical patient", subjects.typical[0], subjects.typical_resources),
        ("big patient", subjects.big, subjects.big_resources),
    ):
        client.get(f"/patients/{external_id}/")  # caches filled, as on a warm server
        caches[CACHE_ALIAS].clear()  # ... except the page cache: the record is drawn from the database
        timer = QueryTimer()
        with connection.execute_wrapper(timer):
            response = client.get(f"/patients/{external_id}/")
        warm = QueryTimer()
        with connection.execute_wrapper(warm):
            client.get(f"/patients/{external_id}/")
        print(
            f"  {label:<16} {resources:6,} resources   {len(timer.queries):3d} queries drawn, "
            f"{len(warm.queries):3d} from the page cache   "
            f"status {response.status_code}   {len(response.content) / 1024:7.0f} KiB of HTML"
        )
    print("  the big patient's queries (ms, statement start):")
    for seconds, statement in timer.queries:
        print(f"    {1000 * seconds:6.2f}  {' '.join(statement.split())[:140]}")


def page_profile(subjects: Subjects, *, rounds: int) -> None:
    from django.contrib.auth.models import User
    from django.core.cache import caches
    from django.db import connection
    from django.test import Client

    from patients.chart import patient_chart_get
    from patients.figures import blood_pressure_figure, weight_figure
    from patients.page_cache import CACHE_ALIAS, record_version
    from patients.selectors import golden_patient_get

    user = User.objects.get(username=USERNAME)
    client = Client()
    client.force_login(user)
    path = f"/patients/{subjects.big}/"
    client.get(path)
    stages: dict[str, list[float]] = {
        name: []
        for name in (
            "whole request (test client)",
            "patient_chart_get",
            "  of which SQL",
            "figures",
            "whole request, unchanged record",
            "  of which the version query",
        )
    }
    for _ in range(rounds):
        caches[CACHE_ALIAS].clear()  # as if the record had changed since the last view
        started = time.perf_counter()
        client.get(path)
        stages["whole request (test client)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        client.get(path)
        stages["whole request, unchanged record"].append(time.perf_counter() - started)
        patient = golden_patient_get(user=user, external_id=subjects.big)
        assert patient is not None
        timer = QueryTimer()
        with connection.execute_wrapper(timer):
            started = time.perf_counter()
            chart = patient_chart_get(patient)
            stages["patient_chart_get"].append(time.perf_counter() - started)
        stages["  of which SQL"].append(sum(seconds for seconds, _ in timer.queries))
        started = time.perf_counter()
        blood_pressure_figure(chart.series)
        weight_figure(chart.series)
        stages["figures"].append(time.perf_counter() - started)
        started = time.perf_counter()
        record_version(patient)
        stages["  of which the version query"].append(time.perf_counter() - started)
    whole = statistics.median(stages["whole request (test client)"])
    print(
        f"\nWhere the big patient's page spends its time (in-process, median of {rounds}, one client; the "
        "whole request drawn from the database, then again from the page cache):"
    )
    for name, values in stages.items():
        median = statistics.median(values)
        print(f"  {name:<30} {1000 * median:7.1f} ms  {100 * median / whole:5.1f}%")
    rest = whole - sum(statistics.median(stages[name]) for name in ("patient_chart_get", "figures"))
    print(
        f"  {'drawn: rest (template, session, audit)':<30} {1000 * rest:7.1f} ms  {100 * rest / whole:5.1f}%"
    )
    print(
        f"  chart: {len(chart.encounters)} encounters, {len(chart.labs)} labs, {len(chart.vitals)} vitals, "
        f"{len(chart.procedures)} procedures, {len(chart.medications)} medications, "
        f"{len(chart.documents)} documents, {sum(len(points) for points in chart.series.values())} chart points"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        caches[CACHE_ALIAS].clear()
        client.get(path)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    print("\nTop functions by own time, 5 big-patient pages drawn from the database (cProfile on):")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:5000])
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(
        r"patients|core|template/base", 25
    )
    print("\nProject and template functions by cumulative time:")
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000])


def search_profile(subjects: Subjects, *, rounds: int) -> None:
    """Where a name search spends its time: the selector (candidates and scoring), then the whole request."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from patients.selectors import golden_patient_search

    user = User.objects.get(username=USERNAME)
    client = Client()
    client.force_login(user)
    print(f"\nWhere a search spends its time (in-process, one client, {rounds} queries of each kind):")
    for kind, queries in subjects.searches.items():
        sample = queries[:rounds]
        whole, selector, sql, hits = [], [], [], []
        for query in sample:
            timer = QueryTimer()
            with connection.execute_wrapper(timer):
                started = time.perf_counter()
                found = golden_patient_search(user=user, query=query)
                selector.append(time.perf_counter() - started)
            sql.append(sum(seconds for seconds, _ in timer.queries))
            hits.append(len(found))
            started = time.perf_counter()
            client.get("/patients/search/", {"q": query}, headers={"HX-Request": "true"})
            whole.append(time.perf_counter() - started)
        print(
            f"  {kind:<24} whole request p50 {1000 * statistics.median(whole):6.1f} ms   "
            f"golden_patient_search p50 {1000 * statistics.median(selector):6.1f} ms "
            f"(SQL {1000 * statistics.median(sql):5.1f} ms)   hits p50 {statistics.median(hits):4.0f}"
        )
    queries = subjects.searches["name with a typo"][:rounds]
    profiler = cProfile.Profile()
    profiler.enable()
    for query in queries:
        golden_patient_search(user=user, query=query)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    print(
        f"\nTop functions by own time, golden_patient_search of {len(queries)} misspelled names (cProfile on):"
    )
    print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:4000])


# The server and its clients


class HttpClient:
    """One browser-like client: its own connection and cookies (the stdlib keeps the client's CPU low)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, *, body: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, float]:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=sent)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # A threaded worker closes a kept-alive connection left idle (between phases): open a new one.
            self.connection.close()
            started = time.perf_counter()
            self.connection.request(method, path, body=body, headers=sent)
            response = self.connection.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - started
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response.status, content, elapsed

    def login(self, password: str) -> None:
        status, page, _ = self.request("GET", "/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or token is None:
            sys.exit(f"login form: status {status}, no CSRF token")
        form = {"csrfmiddlewaretoken": token[1].decode(), "username": USERNAME, "password": password}
        status, _, _ = self.request(
            "POST",
            "/accounts/login/",
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 302 or "sessionid" not in self.cookies:
            sys.exit(f"login as {USERNAME} failed: status {status}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def server_start(
    env: dict[str, str], *, port: int, workers: int, threads: int, log_path: Path
) -> subprocess.Popen[bytes]:
    # One thread: gunicorn's sync workers. More: gthread workers, each serving that many requests at once
    # (one runs Python at a time; the others wait on PostgreSQL).
    threaded = ["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(workers), *threaded,
         "--bind", f"127.0.0.1:{port}", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status, _, _ = HttpClient(port).request("GET", "/healthz")
            if status == 200:
                return server
        except OSError:
            pass
        if server.poll() is not None:
            sys.exit(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    server.terminate()
    sys.exit("gunicorn did not answer within 60 s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over every core (Linux /proc/stat)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / ticks, sum(values) / ticks


@dataclass
class Result:
    label: str
    seconds: list[float]
    wall: float
    server_cpu: float
    client_cpu: float
    machine_busy: float
    target_ms: float | None = None

    def at(self, share: float) -> float:
        ordered = sorted(self.seconds)
        return 1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def phase_run(
    clients: list[HttpClient],
    paths: Sequence[str],
    *,
    requests: int,
    warmup: int,
    headers: dict[str, str],
    worker_pids: list[int],
    label: str,
    target_ms: float | None = None,
) -> Result:
    """``requests`` GETs of ``paths`` (in turn) spread over the clients, each sending back to back."""

    def work(client: HttpClient, counter: Callable[[], int], limit: int, times: list[float]) -> None:
        while (number := counter()) < limit:
            status, content, elapsed = client.request("GET", paths[number % len(paths)], headers=headers)
            if status != 200:
                raise RuntimeError(
                    f"{label}: {paths[number % len(paths)]} answered {status}: {content[:300]!r}"
                )
            times.append(elapsed)

    def run(limit: int) -> list[float]:
        lock = threading.Lock()
        numbers = itertools.count()

        def counter() -> int:
            with lock:
                return next(numbers)

        times: list[float] = []
        with ThreadPoolExecutor(len(clients)) as pool:
            for future in [pool.submit(work, client, counter, limit, times) for client in clients]:
                future.result()
        return times

    run(warmup * len(clients))
    server_before = sum(_cpu_seconds(pid) for pid in worker_pids)
    client_before = time.process_time()
    busy_before, total_before = _machine_busy_seconds()
    started = time.perf_counter()
    times = run(requests)
    wall = time.perf_counter() - started
    busy_after, total_after = _machine_busy_seconds()
    return Result(
        label=label,
        seconds=times,
        wall=wall,
        server_cpu=sum(_cpu_seconds(pid) for pid in worker_pids) - server_before,
        client_cpu=time.process_time() - client_before,
        machine_busy=(busy_after - busy_before) / max(1e-9, total_after - total_before),
        target_ms=target_ms,
    )


def result_line(result: Result) -> str:
    count = len(result.seconds)
    target = ""
    if result.target_ms is not None:
        verdict = "met" if result.at(0.95) <= result.target_ms else "NOT met"
        target = f"  (target p95 <= {result.target_ms:.0f} ms: {verdict})"
    return (
        f"  {result.label:<44} p50 {result.at(0.50):7.1f}  p95 {result.at(0.95):7.1f}  p99 {result.at(0.99):7.1f} ms"
        f"  {count / result.wall:6.1f} req/s  gunicorn {1000 * result.server_cpu / count:6.1f}"
        f"  client {1000 * result.client_cpu / count:4.1f} ms CPU/req  machine busy {100 * result.machine_busy:3.0f}%"
        + target
    )


def everything_walk(client: HttpClient, path: str, headers: dict[str, str]) -> tuple[int, float, int]:
    """Every page of $everything by its next links, one request after the other: (pages, seconds, entries)."""
    import json

    pages = entries = 0
    started = time.perf_counter()
    next_path: str | None = path
    while next_path:
        status, content, _ = client.request("GET", next_path, headers=headers)
        if status != 200:
            raise RuntimeError(f"$everything page {pages + 1}: {status} {content[:300]!r}")
        bundle = json.loads(content)
        pages += 1
        entries += len(bundle.get("entry") or ())
        next_path = None
        for link in bundle.get("link") or ():
            if link.get("relation") == "next":
                next_path = re.sub(r"^https?://[^/]+", "", link["url"])
    return pages, time.perf_counter() - started, entries


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    paths: list[str]
    headers: dict[str, str]
    target_ms: float | None = None


def endpoints_list(subjects: Subjects, *, bearer: dict[str, str], everything: bool) -> list[Endpoint]:
    found = [
        Endpoint("floor", "floor: /patients/ (logged-in landing)", ["/patients/"], {}),
        Endpoint(
            "page",
            f"patient page, big ({subjects.big_resources:,} resources, unchanged: page cache)",
            [f"/patients/{subjects.big}/"],
            {},
            PAGE_P95_TARGET_MS,
        ),
        Endpoint(
            "typical",
            f"patient page, typical (~{subjects.typical_resources} resources)",
            [f"/patients/{external_id}/" for external_id in subjects.typical],
            {},
        ),
    ]
    for kind, queries in subjects.searches.items():
        paths = [f"/patients/search/?q={quote(query)}" for query in queries]
        found.append(Endpoint(kind, f"search: {kind}", paths, {"HX-Request": "true"}, SEARCH_P95_TARGET_MS))
    if everything:
        path = f"/fhir/Patient/{subjects.big}/$everything"
        found.append(Endpoint("everything", "$everything, big, first page", [path], bearer))
    return found


def load_test(options: argparse.Namespace, env: dict[str, str], subjects: Subjects, token: str) -> None:
    from django.conf import settings

    results: dict[str, Result] = {}
    alone: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="concord-bench-gunicorn-") as scratch:
        port = free_port()
        server = server_start(
            env,
            port=port,
            workers=options.workers,
            threads=options.threads,
            log_path=Path(scratch) / "gunicorn.log",
        )
        try:
            children = subprocess.run(
                ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False
            )
            worker_pids = [int(pid) for pid in children.stdout.split()]
            clients = [HttpClient(port) for _ in range(options.clients)]
            for client in clients:
                client.login(settings.CONCORD_DEMO_PASSWORD)
            bearer = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
            everything_path = f"/fhir/Patient/{subjects.big}/$everything"
            everything_status, _, _ = clients[0].request("GET", everything_path, headers=bearer)
            endpoints = endpoints_list(subjects, bearer=bearer, everything=everything_status == 200)
            if options.only:
                endpoints = [endpoint for endpoint in endpoints if endpoint.key in options.only]
            print(
                f"\nOne client (service time: no queueing): {options.requests_alone} requests per line after "
                f"{options.warmup} warm-up requests"
            )
            print(f"  load average before: {load_average()}")
            for endpoint in endpoints:
                alone[endpoint.key] = phase_run(
                    clients[:1],
                    endpoint.paths,
                    requests=options.requests_alone,
                    warmup=options.warmup,
                    headers=endpoint.headers,
                    worker_pids=worker_pids,
                    label=endpoint.label,
                )
                print(result_line(alone[endpoint.key]))
            if everything_status == 200:
                pages, seconds, entries = everything_walk(clients[0], everything_path, bearer)
                print(
                    f"  $everything walked page by page (one client): {pages} pages, "
                    f"{entries:,} entries in {1000 * seconds:.0f} ms"
                )
            print(
                f"\nUnder load: gunicorn {options.workers} "
                + (f"gthread workers of {options.threads} threads" if options.threads > 1 else "sync workers")
                + f", {options.clients} clients back to back "
                f"(no think time), {options.requests} requests per line after {options.warmup} warm-up "
                "requests per client"
            )
            print(f"  load average before: {load_average()}")
            for endpoint in endpoints:
                results[endpoint.key] = phase_run(
                    clients,
                    endpoint.paths,
                    requests=options.requests,
                    warmup=options.warmup,
                    headers=endpoint.headers,
                    worker_pids=worker_pids,
                    label=endpoint.label,
                    target_ms=endpoint.target_ms,
                )
                print(result_line(results[endpoint.key]))
            if everything_status != 200:
                print(f"  $everything: not available (GET answered {everything_status})")
            print(f"  load average after: {load_average()}")
        finally:
            server.terminate()
            server.wait(timeout=60)
    if not {"floor", "page", "typical"} <= results.keys():
        return
    floor, page, typical = results["floor"], results["page"], results["typical"]
    ratio_95 = page.at(0.95) / floor.at(0.95)
    print(f"\nTargets ({options.clients} clients):")
    print(
        f"  patient page p95 {page.at(0.95):.1f} ms <= {PAGE_P95_TARGET_MS:.0f} ms: "
        f"{'met' if page.at(0.95) <= PAGE_P95_TARGET_MS else 'NOT met'}"
    )
    verdict = "met" if ratio_95 <= PAGE_FLOOR_RATIO_TARGET else "NOT met"
    print(
        f"  patient page / floor: p50 {page.at(0.50) / floor.at(0.50):.2f}, p95 {ratio_95:.2f} "
        f"(target p95 ratio <= {PAGE_FLOOR_RATIO_TARGET:.0f}: {verdict}); one client: "
        f"p50 {alone['page'].at(0.50) / alone['floor'].at(0.50):.2f}"
    )
    print(
        f"  typical patient page / floor: p50 {typical.at(0.50) / floor.at(0.50):.2f}, "
        f"p95 {typical.at(0.95) / floor.at(0.95):.2f}"
    )
    for kind in subjects.searches:
        if kind not in results:
            continue
        search = results[kind]
        print(
            f"  search ({kind}) p95 {search.at(0.95):.1f} ms <= {SEARCH_P95_TARGET_MS:.0f} ms: "
            f"{'met' if search.at(0.95) <= SEARCH_P95_TARGET_MS else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--people", type=int, default=100_000, help="Golden patients, about (default 100,000)."
    )
    parser.add_argument(
        "--synthea-copies", type=int, default=2, help="Clones of each Synthea bundle ingested (default 2)."
    )
    parser.add_argument(
        "--histories",
        type=int,
        default=10_000,
        help="Generator people given a copied history (default 10,000).",
    )
    parser.add_argument("--requests", type=int, default=800, help="Requests per endpoint (default 800).")
    parser.add_argument(
        "--requests-alone", type=int, default=60, help="Requests per endpoint with one client (default 60)."
    )
    parser.add_argument("--warmup", type=int, default=3, help="Warm-up requests per client (default 3).")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
    parser.add_argument(
        "--threads", type=int, default=1, help="Threads per worker (default 1: sync workers; more: gthread)."
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="Measure only this endpoint (repeatable): floor, page, typical, everything, or a search's name "
        '("name with a typo", "record number", ...); the targets need floor, page and typical.',
    )
    parser.add_argument(
        "--profile-rounds", type=int, default=10, help="In-process profile rounds (default 10; 0 skips them)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="Measure the existing database, build nothing.")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="Server URL.")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    options = parser.parse_args()
    if not data.SYNTHEA.is_dir():
        sys.exit(f"needs the shared Synthea bundles at {data.SYNTHEA}")

    print(f"Load average at start: {load_average()}")
    database_url = f"{options.postgres}/{DATABASE}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": options.redis,
        "CELERY_RESULT_BACKEND": options.redis,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
    }
    django_start(env)
    if not options.reuse:
        database_build(options, env, database_url)
    data_summary()
    subjects = subjects_find(options.seed)
    token = run_manage(env, "api_token", USERNAME, "--name", "bench patient_view").strip()
    page_query_counts(subjects)
    if options.profile_rounds:
        page_profile(subjects, rounds=options.profile_rounds)
        search_profile(subjects, rounds=4 * options.profile_rounds)
    from django.db import connections

    connections.close_all()
    load_test(options, env, subjects, token)
    print(f"\nLoad average at the end: {load_average()}")


if __name__ == "__main__":
    main()
