"""MLLP listener throughput: messages per second through to the ACK, and landing alone.

    .venv/bin/python bench/mllp.py [--messages 2000] [--connections 4] [--database-url URL]

1. Recreates a benchmark database (default "concord_bench_mllp" on the local PostgreSQL) and migrates
   it, unless ``--database-url`` names one to use as it is.
2. Starts ``manage.py mllp_listen`` on port 0 and sends ``--messages`` short synthetic ADT^A01 messages
   over ``--connections`` connections, each waiting for its ACK before sending the next. The ACK waits
   for landing and processing, so this is the rate of both.
3. Times ``payload_receive`` in-process for the same messages (under another source, so they are new):
   landing alone.

Prints every figure; asserts nothing (speed targets live here, never in tests).
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import database_recreate, run_manage  # noqa: E402
from patients.synthetic.hl7v2_messages import admission_message  # noqa: E402

END_BLOCK = b"\x1c\x0d"


def messages(count: int) -> list[bytes]:
    """Admissions of distinct made-up people, about 300 bytes each."""
    return [
        admission_message(
            number=number,
            control_id=f"BENCH-{number}",
            medical_record_number=f"BENCH-MRN-{number}",
            sending_facility="BENCH-HOSP",
        )
        for number in range(count)
    ]


def listener_start(env: dict[str, str], *, workers: int) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "mllp_listen", "--source", "bench-mllp", "--port", "0",
         "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("Listening for MLLP on "):
        process.kill()
        sys.exit(f"the listener did not start: {line}{process.stderr.read() if process.stderr else ''}")
    port = int(line.split(" on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
    return process, port


def send(port: int, bodies: list[bytes], codes: Counter[str], lock: threading.Lock) -> None:
    found: Counter[str] = Counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        buffer = b""
        for body in bodies:
            connection.sendall(b"\x0b" + body + END_BLOCK)
            while END_BLOCK not in buffer:
                chunk = connection.recv(65536)
                if not chunk:
                    raise ConnectionError("the listener closed the connection")
                buffer += chunk
            answer, buffer = buffer.split(END_BLOCK, 1)
            msa = next(line for line in answer.decode().split("\r") if line.startswith("MSA|"))
            found[msa.split("|")[1]] += 1
    with lock:
        codes.update(found)


def through_to_acknowledgement(
    env: dict[str, str], bodies: list[bytes], *, connections: int, workers: int
) -> None:
    process, port = listener_start(env, workers=workers)
    codes: Counter[str] = Counter()
    lock = threading.Lock()
    shares = [bodies[index::connections] for index in range(connections)]
    threads = [threading.Thread(target=send, args=(port, share, codes, lock)) for share in shares]
    try:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    print(
        f"Through to ACK ({connections} connections, {workers} listener workers): {len(bodies):,} messages in "
        f"{elapsed:.2f} s = {len(bodies) / elapsed:,.0f} messages/s, "
        f"{1000 * elapsed * connections / len(bodies):.1f} ms per message per connection"
    )
    print(f"  answers: {dict(sorted(codes.items()))}")
    print(f"  listener: {output.strip().splitlines()[-1] if output.strip() else '(no summary)'}")


def landing_alone(env: dict[str, str], bodies: list[bytes]) -> None:
    os.environ.update({key: env[key] for key in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "LOG_LEVEL")})
    import django

    django.setup()
    from patients.ingest.processing import payload_receive
    from patients.services import source_ensure

    source, _ = source_ensure(actor=None, slug="bench-mllp-landing")
    started = time.perf_counter()
    for body in bodies:
        payload_receive(
            source=source,
            body=body,
            format="hl7v2",
            channel="mllp",
            content_type="x-application/hl7-v2+er7",
            origin="mllp://bench",
            enqueue=False,
        )
    elapsed = time.perf_counter() - started
    print(
        f"Landing alone (payload_receive in one thread): {len(bodies):,} messages in {elapsed:.2f} s = "
        f"{len(bodies) / elapsed:,.0f} messages/s ({1000 * elapsed / len(bodies):.2f} ms each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="Listener worker threads (default 4).")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432", help="Server URL.")
    parser.add_argument("--database", default="concord_bench_mllp")
    parser.add_argument("--database-url", help="Use this database as it is instead of recreating one.")
    options = parser.parse_args()

    database_url = options.database_url or f"{options.postgres}/{options.database}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "false",
    }
    if not options.database_url:
        database_recreate(f"{options.postgres}/postgres", options.database)
    run_manage(env, "migrate", "--no-input", "-v0")
    bodies = messages(options.messages)
    print(
        f"Data: {len(bodies):,} ADT^A01 messages, {sum(map(len, bodies)) / len(bodies):.0f} bytes on average"
    )
    through_to_acknowledgement(env, bodies, connections=options.connections, workers=options.workers)
    landing_alone(env, bodies)


if __name__ == "__main__":
    main()
