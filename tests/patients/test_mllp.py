"""The MLLP listener against real sockets on loopback, with the listener running in a background thread.

The listener runs in this process (its own event loop in a thread) so its worker threads use the test
database; tests are transactional because those threads commit through their own connections.
"""

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from patients.mllp.framing import END_BLOCK, Abandoned, FrameDecoder, Junk, Message, Oversized, frame
from patients.mllp.server import MllpListener
from patients.models import InboundPayload, Source, SourcePatient
from patients.services import source_ensure
from patients.synthetic.hl7v2_messages import admission_message

ROOT = Path(__file__).resolve().parents[2]
# The HL7 v2 parser is written alongside the listener: until processing routes "hl7v2" payloads to it,
# they are stored and quarantined as an unsupported format, so no message can be accepted (AA) yet.
HL7_PARSER_MISSING = (
    importlib.util.find_spec("patients.ingest.hl7v2") is None
    or "hl7v2" not in (ROOT / "patients" / "ingest" / "processing.py").read_text()
)
BYTE_ORDER_MARK = b"\xef\xbb\xbf"


def adt_a01(control_id: str, *, processing_id: str = "P", medical_record_number: str = "MRN-1001") -> bytes:
    """A synthetic ADT^A01 (admission) for a made-up patient."""
    return (
        "MSH|^~\\&|SYNTH-EHR|SYNTH-HOSP|CONCORD|CONCORD|20240302093000||ADT^A01^ADT_A01|"
        f"{control_id}|{processing_id}|2.5.1\r"
        "EVN|A01|20240302093000\r"
        f"PID|1||{medical_record_number}^^^SYNTH-HOSP^MR||Quigley^Alma||19610412|F|||"
        "12 Elm St^^Boston^MA^02108||^PRN^PH^^1^617^5550134\r"
        "PV1|1|I|4N^401^A\r"
    ).encode()


def header_only(control_id: str) -> bytes:
    """An ADT^A01 with no PID: not valid, whichever parser reads it."""
    return f"MSH|^~\\&|SYNTH-EHR|SYNTH-HOSP|CONCORD|CONCORD|20240302093000||ADT^A01|{control_id}|P|2.5.1\r".encode()


class MllpClient:
    def __init__(self, address: tuple[str, int]) -> None:
        self.socket = socket.create_connection(address, timeout=30)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def acknowledgement(self) -> bytes:
        while END_BLOCK not in self._buffer:
            chunk = self.socket.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an acknowledgement ({self._buffer!r} buffered)")
            self._buffer += chunk
        answer, self._buffer = self._buffer.split(END_BLOCK, 1)
        assert answer[:1] == b"\x0b"
        return answer[1:]

    def exchange(self, body: bytes) -> bytes:
        self.send(frame(body))
        return self.acknowledgement()

    def is_closed_by_peer(self) -> bool:
        return self.socket.recv(1) == b""

    def close(self) -> None:
        self.socket.close()


def segment(message: bytes, name: str) -> list[str]:
    """The fields of the first segment called ``name``; index n is field n (0 is the segment name)."""
    for line in message.decode().split("\r"):
        if line.startswith(name + "|"):
            return line.split("|")
    raise AssertionError(f"no {name} segment in {message!r}")


def has_segment(message: bytes, name: str) -> bool:
    return any(line.startswith(name + "|") for line in message.decode().split("\r"))


@contextmanager
def listener_running(source: Source, **options: Any) -> Iterator[MllpListener]:
    listener = MllpListener(source=source, host="127.0.0.1", port=0, **options)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(listener.start())
            started.set()
            loop.run_until_complete(listener.serve_until_stopped())
        except BaseException as error:
            failures.append(error)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="mllp-test-listener", daemon=True)
    thread.start()
    started.wait(timeout=30)
    assert failures == []
    try:
        yield listener
    finally:
        if not loop.is_closed():
            asyncio.run_coroutine_threadsafe(listener.stop(), loop).result(timeout=90)
        thread.join(timeout=30)


@pytest.fixture
def source(transactional_db: None) -> Source:
    created, _ = source_ensure(actor=None, slug="mllp-ehr", name="MLLP EHR", kind=Source.Kind.EHR)
    return created


@pytest.fixture
def listener(source: Source) -> Iterator[MllpListener]:
    with listener_running(source, max_message_bytes=4096, workers=4) as running:
        yield running


@pytest.fixture
def client(listener: MllpListener) -> Iterator[MllpClient]:
    connected = MllpClient(listener.address)
    yield connected
    connected.close()


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# Framing, without sockets.


def test_decoder_finds_an_end_block_split_across_reads() -> None:
    decoder = FrameDecoder(max_message_bytes=100)

    assert decoder.feed(b"\x0bMSH|x\x1c") == []
    assert decoder.feed(b"\x0d") == [Message(body=b"MSH|x")]
    assert decoder.pending_bytes == 0


def test_decoder_discards_junk_and_restarts_on_a_new_start_block() -> None:
    decoder = FrameDecoder(max_message_bytes=100)

    events = decoder.feed(b"\x00junk\x0bMSH|cut\x0bMSH|whole\x1c\x0d")

    assert events == [Junk(size=5), Abandoned(size=7), Message(body=b"MSH|whole")]


def test_decoder_reports_an_oversized_frame_once_and_skips_it() -> None:
    decoder = FrameDecoder(max_message_bytes=10)

    first = decoder.feed(b"\x0bMSH|" + b"a" * 20)
    second = decoder.feed(b"b" * 50 + b"\x1c\x0d\x0bMSH|ok\x1c\x0d")

    assert first == [Oversized(size=24, head=b"MSH|" + b"a" * 20)]
    assert second == [Message(body=b"MSH|ok")]


# Acknowledgements.


@pytest.mark.skipif(
    HL7_PARSER_MISSING, reason="the HL7 v2 parser (patients.ingest.hl7v2) is not used by processing yet"
)
def test_a_valid_admission_is_accepted(client: MllpClient, source: Source) -> None:
    body = adt_a01("CTRL-AA-1")

    answer = client.exchange(body)

    assert segment(answer, "MSA")[1:3] == ["AA", "CTRL-AA-1"]
    payload = InboundPayload.objects.get(source=source)
    assert payload.status == InboundPayload.Status.ACCEPTED
    assert bytes(payload.body) == body


def test_an_invalid_message_is_stored_quarantined_and_answered_ae(
    client: MllpClient, source: Source, caplog: pytest.LogCaptureFixture
) -> None:
    body = header_only("CTRL-AE-1") if not HL7_PARSER_MISSING else adt_a01("CTRL-AE-1")

    answer = client.exchange(body)

    assert segment(answer, "MSA")[1:3] == ["AE", "CTRL-AE-1"]
    assert has_segment(answer, "ERR")
    payload = InboundPayload.objects.get(source=source)
    assert bytes(payload.body) == body
    assert payload.channel == InboundPayload.Channel.MLLP
    assert payload.format == InboundPayload.Format.HL7V2
    assert payload.content_type == "x-application/hl7-v2+er7"
    assert payload.origin.startswith("mllp://127.0.0.1:")
    assert payload.status == InboundPayload.Status.QUARANTINED
    assert "Quigley" not in caplog.text


def test_bytes_that_are_not_hl7_are_stored_and_answered_ar(client: MllpClient, source: Source) -> None:
    body = b"PID|1||MRN-1001\rthis is no message header"

    answer = client.exchange(body)

    assert segment(answer, "MSA")[1:3] == ["AR", ""]
    assert "not an HL7 v2 message" in answer.decode()
    payload = InboundPayload.objects.get(source=source)
    assert bytes(payload.body) == body
    assert payload.status == InboundPayload.Status.QUARANTINED


def test_a_byte_order_mark_before_msh_is_hl7_and_kept(client: MllpClient, source: Source) -> None:
    body = BYTE_ORDER_MARK + header_only("CTRL-BOM-1")

    answer = client.exchange(body)

    assert segment(answer, "MSA")[1:3] == ["AE", "CTRL-BOM-1"]
    assert bytes(InboundPayload.objects.get(source=source).body) == body


@pytest.mark.parametrize("processing_id", ["T", "D", "T^A"])
def test_another_processing_id_is_refused_kept_and_never_processed(
    client: MllpClient, source: Source, processing_id: str
) -> None:
    answer = client.exchange(adt_a01("CTRL-T-1", processing_id=processing_id))

    assert segment(answer, "MSA")[1:3] == ["AR", "CTRL-T-1"]
    assert f"processing id (MSH-11) '{processing_id.split('^')[0]}' is not accepted" in answer.decode()
    assert segment(answer, "ERR")[2] == "MSH^1^11"
    payload = InboundPayload.objects.get()
    assert payload.status == InboundPayload.Status.QUARANTINED
    assert payload.attempts == 0
    assert payload.problems[0]["location"] == "segment 1 (MSH), field MSH-11"
    assert SourcePatient.objects.count() == 0


def test_a_listener_for_training_takes_training_messages(source: Source) -> None:
    with listener_running(source, processing_id="T", workers=1) as training:
        training_client = MllpClient(training.address)
        answer = training_client.exchange(adt_a01("CTRL-T-2", processing_id="T"))
        refused = training_client.exchange(adt_a01("CTRL-P-2", processing_id="P"))
        training_client.close()

    assert segment(answer, "MSA")[1] in {"AA", "AE"}
    assert segment(refused, "MSA")[1:3] == ["AR", "CTRL-P-2"]
    assert InboundPayload.objects.filter(status=InboundPayload.Status.QUARANTINED).count() == 1
    assert InboundPayload.objects.count() == 2


def test_a_duplicate_is_stored_once_and_answered_with_the_stored_outcome(
    client: MllpClient, source: Source
) -> None:
    body = adt_a01("CTRL-DUP-1")

    first = client.exchange(body)
    second = client.exchange(body)

    assert segment(second, "MSA")[1:3] == segment(first, "MSA")[1:3]
    payload = InboundPayload.objects.get(source=source)
    assert payload.times_received == 2


def test_the_same_message_on_four_connections_at_once_is_stored_once(
    listener: MllpListener, source: Source
) -> None:
    body = adt_a01("CTRL-RACE-1")
    senders = [MllpClient(listener.address) for _ in range(4)]
    codes: list[str] = []

    def send(sender: MllpClient) -> None:
        codes.append(segment(sender.exchange(body), "MSA")[1])

    threads = [threading.Thread(target=send, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for sender in senders:
        sender.close()

    assert len(codes) == 4
    assert len(set(codes)) == 1
    # times_received is not asserted: a landing that loses the race to insert is not counted there.
    assert InboundPayload.objects.filter(source=source).count() == 1


def test_processing_failure_after_landing_answers_ae_and_keeps_the_message(
    client: MllpClient, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*, payload_id: int) -> None:
        raise RuntimeError("defect with Quigley in its text")

    monkeypatch.setattr("patients.mllp.handling.payload_process", failing)
    body = adt_a01("CTRL-FAIL-1")

    answer = client.exchange(body)

    assert segment(answer, "MSA")[1:3] == ["AE", "CTRL-FAIL-1"]
    payload = InboundPayload.objects.get(source=source)
    assert bytes(payload.body) == body
    assert payload.status == InboundPayload.Status.RECEIVED


def test_landing_failure_answers_ar_without_logging_the_message(
    client: MllpClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(**_: object) -> None:
        raise RuntimeError("database down while storing Quigley")

    monkeypatch.setattr("patients.mllp.handling.payload_receive", failing)

    answer = client.exchange(adt_a01("CTRL-FAIL-2"))

    assert segment(answer, "MSA")[1:3] == ["AR", "CTRL-FAIL-2"]
    assert "could not be stored" in caplog.text
    assert "Quigley" not in caplog.text
    assert InboundPayload.objects.count() == 0


# Framing and connections.


def test_several_messages_on_one_connection_are_answered_in_order(client: MllpClient, source: Source) -> None:
    bodies = [header_only(f"CTRL-SEQ-{number}") for number in range(3)]

    client.send(b"".join(frame(body) for body in bodies))
    answers = [client.acknowledgement() for _ in bodies]

    assert [segment(answer, "MSA")[2] for answer in answers] == ["CTRL-SEQ-0", "CTRL-SEQ-1", "CTRL-SEQ-2"]
    stored = {bytes(payload.body) for payload in InboundPayload.objects.filter(source=source)}
    assert stored == set(bodies)


def test_binary_junk_before_a_frame_is_discarded(
    client: MllpClient, listener: MllpListener, source: Source
) -> None:
    body = header_only("CTRL-JUNK-1")

    client.send(b"\x00\xff\xfe garbage\r\n" + frame(body))
    answer = client.acknowledgement()

    assert segment(answer, "MSA")[2] == "CTRL-JUNK-1"
    assert bytes(InboundPayload.objects.get(source=source).body) == body
    assert listener.counts["junk_bytes"] == 13


def test_a_truncated_frame_does_not_affect_another_connection(listener: MllpListener, source: Source) -> None:
    broken = MllpClient(listener.address)
    broken.send(b"\x0b" + header_only("CTRL-CUT-1")[:30])
    good = MllpClient(listener.address)

    broken.close()
    answer = good.exchange(header_only("CTRL-GOOD-1"))
    good.close()

    assert segment(answer, "MSA")[2] == "CTRL-GOOD-1"
    wait_until(lambda: listener.counts["truncated"] == 1)
    assert InboundPayload.objects.filter(source=source).count() == 1


def test_an_oversized_message_is_refused_and_the_connection_goes_on(
    client: MllpClient, listener: MllpListener, source: Source
) -> None:
    oversized = header_only("CTRL-BIG-1") + b"NTE|1||" + b"x" * 10_000 + b"\r"

    refused = client.exchange(oversized)
    answer = client.exchange(header_only("CTRL-AFTER-1"))

    assert segment(refused, "MSA")[1:3] == ["AR", "CTRL-BIG-1"]
    assert "over the limit of 4,096 bytes" in refused.decode()
    assert segment(answer, "MSA")[2] == "CTRL-AFTER-1"
    assert list(InboundPayload.objects.values_list("body", flat=True)) == [header_only("CTRL-AFTER-1")]
    assert listener.counts["oversized"] == 1


def test_an_idle_connection_is_closed_after_the_read_timeout(source: Source) -> None:
    with listener_running(source, read_timeout_seconds=0.3, workers=1) as quick:
        idle = MllpClient(quick.address)
        started = time.monotonic()

        assert idle.is_closed_by_peer()
        assert time.monotonic() - started < 5
        idle.close()


def test_stopping_answers_the_message_in_flight_then_closes(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    from patients.mllp import handling

    slow_started = threading.Event()
    real_process = handling.payload_process

    def slow(*, payload_id: int) -> Any:
        slow_started.set()
        time.sleep(0.5)
        return real_process(payload_id=payload_id)

    monkeypatch.setattr(handling, "payload_process", slow)
    with listener_running(source, workers=1) as stopping:
        sender = MllpClient(stopping.address)
        idle = MllpClient(stopping.address)
        sender.send(frame(header_only("CTRL-STOP-1")))
        slow_started.wait(timeout=10)
    # Leaving the block stopped the listener while the message was being processed.

    assert segment(sender.acknowledgement(), "MSA")[2] == "CTRL-STOP-1"
    assert sender.is_closed_by_peer()
    assert idle.is_closed_by_peer()
    sender.close()
    idle.close()


def test_a_thousand_messages_over_four_connections_are_each_stored_once(
    source: Source, listener: MllpListener
) -> None:
    def send_all(connection_number: int, results: list[str]) -> None:
        sender = MllpClient(listener.address)
        for number in range(250):
            control_id = f"C{connection_number}-{number}"
            body = admission_message(
                number=connection_number * 1000 + number,
                control_id=control_id,
                medical_record_number=f"MRN-{connection_number}-{number}",
            )
            results.append(segment(sender.exchange(body), "MSA")[2])
        sender.close()

    results: list[list[str]] = [[] for _ in range(4)]
    started = time.monotonic()
    threads = [threading.Thread(target=send_all, args=(number, results[number])) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started

    assert [len(answers) for answers in results] == [250, 250, 250, 250]
    assert results[2][:2] == ["C2-0", "C2-1"]
    assert InboundPayload.objects.filter(source=source).count() == 1000
    assert InboundPayload.objects.filter(source=source, times_received=1).count() == 1000
    assert listener.counts["messages"] == 1000
    print(f"1,000 MLLP messages over 4 connections answered in {elapsed:.1f} s")


# The management command, as a process.


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the command process needs the PostgreSQL test database"
)
def test_the_command_prints_its_port_answers_and_stops_on_sigterm(source: Source) -> None:
    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CONCORD_TEST_DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "mllp_listen", "--source", "new-mllp-source", "--port", "0"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = int(line.split(" on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
        sender = MllpClient(("127.0.0.1", port))
        answer = sender.exchange(header_only("CTRL-CMD-1"))
        sender.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=60)

    assert line.startswith("Listening for MLLP on 127.0.0.1:")
    assert segment(answer, "MSA")[2] == "CTRL-CMD-1"
    assert process.returncode == 0
    assert "created it with kind 'other'" in errors
    assert "1 messages" in output
    assert InboundPayload.objects.filter(source__slug="new-mllp-source").count() == 1


SHARED_HL7V2 = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hl7v2" / "msft_fhir_converter" / "input"
)
SUPPORTED_ADT_EVENTS = {"A01", "A02", "A03", "A04", "A05", "A08", "A11", "A13", "A28", "A31", "A40"}


@pytest.mark.skipif(not SHARED_HL7V2.is_dir(), reason=f"shared HL7 v2 samples are absent ({SHARED_HL7V2})")
def test_the_shared_adt_samples_over_a_real_socket_get_the_right_acknowledgements(source: Source) -> None:
    from patients.ingest.hl7v2.ack import message_header

    samples = sorted(SHARED_HL7V2.glob("ADT*.hl7"))
    assert len(samples) > 20
    with listener_running(source, workers=2) as running:  # the default size limit: real messages
        client = MllpClient(running.address)
        answers = _exchange_all(client, samples, message_header)
        client.close()

    for name, (trigger, processing_id, code, text) in answers.items():
        expected = "AR" if processing_id != "P" else "AA" if trigger in SUPPORTED_ADT_EVENTS else "AE"
        assert code == expected, f"{name} ({trigger}, processing id {processing_id}) answered {code}: {text}"
    assert InboundPayload.objects.count() == len({path.read_bytes() for path in samples})


def _exchange_all(
    client: MllpClient, samples: list[Path], message_header: Any
) -> dict[str, tuple[str, str, str, str]]:
    answers: dict[str, tuple[str, str, str, str]] = {}
    for path in samples:
        body = path.read_bytes()
        header = message_header(body)
        assert header is not None, path.name
        answer = client.exchange(body)
        msa = segment(answer, "MSA")
        assert msa[2] == header.message_control_id, path.name  # MSA-2 echoes MSH-10
        processing_id = header.processing_id.split("^")[0]
        answers[path.name] = (header.trigger_event, processing_id, msa[1], answer.decode(errors="replace"))
    return answers
