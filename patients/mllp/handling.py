"""One framed message, synchronously: land it, process it, and decide the acknowledgement.

Runs in a worker thread (Django's ORM is synchronous). Logs carry payload ids, codes and exception
types, never message contents: those are PHI.
"""

import logging
import traceback
from dataclasses import dataclass

from django.db import close_old_connections

from patients.ingest.entries import Problem
from patients.ingest.hl7v2.ack import MessageHeader, acknowledgement, message_header
from patients.ingest.processing import payload_hold, payload_process, payload_receive
from patients.models import InboundPayload, Source

logger = logging.getLogger(__name__)

CONTENT_TYPE = "x-application/hl7-v2+er7"
BYTE_ORDER_MARK = b"\xef\xbb\xbf"

ACCEPT = "AA"
ERROR = "AE"
REJECT = "AR"


@dataclass(frozen=True)
class Answer:
    code: str
    acknowledgement: bytes
    payload_id: int | None = None
    duplicate: bool = False


def is_hl7(body: bytes) -> bool:
    """An HL7 v2 message starts with its MSH segment (after an optional UTF-8 byte order mark)."""
    return body.removeprefix(BYTE_ORDER_MARK).startswith(b"MSH")


def processing_id_of(header: MessageHeader) -> str:
    """MSH-11's first component (the processing id; a second one is the processing mode)."""
    value = header.processing_id
    for separator in "^&":
        value = value.split(separator, 1)[0]
    return value.strip()


def _log_failure(message: str, error: BaseException, *arguments: object) -> None:
    # The exception's text (and the values on its lines) can quote the message it choked on: only its
    # type and where it was raised are logged.
    frames = " < ".join(
        f"{frame.filename}:{frame.lineno} {frame.name}"
        for frame in reversed(traceback.extract_tb(error.__traceback__))
    )
    logger.error(message + " (%s at %s)", *arguments, type(error).__name__, frames)


def message_acknowledge(*, source: Source, body: bytes, origin: str, processing_id: str) -> Answer:
    header = message_header(body)
    refusal = ""
    if is_hl7(body) and header is not None and processing_id_of(header) != processing_id:
        refusal = (
            f"processing id (MSH-11) {processing_id_of(header)!r} is not accepted here: "
            f"this listener takes {processing_id!r} messages only"
        )
    close_old_connections()
    try:
        return _land_and_process(source=source, body=body, origin=origin, header=header, refusal=refusal)
    finally:
        close_old_connections()


def _land_and_process(
    *, source: Source, body: bytes, origin: str, header: MessageHeader | None, refusal: str
) -> Answer:
    try:
        payload, created = payload_receive(
            source=source,
            body=body,
            format=InboundPayload.Format.HL7V2,
            channel=InboundPayload.Channel.MLLP,
            content_type=CONTENT_TYPE,
            origin=origin,
            enqueue=False,
        )
    except Exception as error:
        _log_failure("an MLLP message from %s could not be stored", error, origin)
        text = "the message could not be stored; send it again later"
        return Answer(code=REJECT, acknowledgement=acknowledgement(header, code=REJECT, text=text))

    if refusal:
        # A test or debug message must not become production data: kept like every payload, never processed.
        payload_hold(
            payload=payload, problem=Problem("segment 1 (MSH), field MSH-11", refusal), kind="refused"
        )
        return Answer(
            code=REJECT,
            acknowledgement=acknowledgement(
                header, code=REJECT, text=refusal, error_location="segment 1 (MSH), field MSH-11"
            ),
            payload_id=payload.pk,
            duplicate=not created,
        )
    try:
        if payload.status == InboundPayload.Status.RECEIVED:
            payload = payload_process(payload_id=payload.pk).payload
    except Exception as error:
        _log_failure("payload %s (MLLP) failed in processing; it stays stored", error, payload.pk)
        text = "internal error while processing; the message is stored and will be replayed"
        return Answer(
            code=ERROR,
            acknowledgement=acknowledgement(header, code=ERROR, text=text),
            payload_id=payload.pk,
            duplicate=not created,
        )

    if not is_hl7(body) or header is None:
        code, text, location = REJECT, "not an HL7 v2 message: it does not start with an MSH segment", ""
    elif payload.status == InboundPayload.Status.ACCEPTED:
        code, text, location = ACCEPT, "", ""
    else:
        code, text, location = ERROR, *_first_problem(payload)
    logger.debug("payload %s (MLLP) answered %s", payload.pk, code)
    return Answer(
        code=code,
        acknowledgement=acknowledgement(header, code=code, text=text, error_location=location),
        payload_id=payload.pk,
        duplicate=not created,
    )


def _first_problem(payload: InboundPayload) -> tuple[str, str]:
    if payload.problems:
        first = payload.problems[0]
        return str(first.get("message", "")), str(first.get("location", ""))
    if payload.status == InboundPayload.Status.RECEIVED:
        return "the message is stored but not processed yet", ""
    return payload.error or "the message is stored but was not accepted", ""
