"""HL7 v2 (2.3 to 2.8) messages and batches, mapped to FHIR R4 and stored like any FHIR payload."""

from patients.ingest.entries import JSON, ParsedPayload, PayloadRejected, Problem
from patients.ingest.fhir_input import IdentifierLookup, fhir_document_parse
from patients.ingest.hl7v2.ack import MessageHeader, acknowledgement, message_header
from patients.ingest.hl7v2.mapping import SUPPORTED_MESSAGE_TYPES, message_map, required_segments
from patients.ingest.hl7v2.parse import SUPPORTED_VERSIONS, Message, messages_split

__all__ = ["MessageHeader", "acknowledgement", "hl7v2_bundle", "hl7v2_payload_parse", "message_header"]


def _message_problems(message: Message) -> tuple[list[Problem], str]:
    """What makes a message unmappable as a whole, with the kind of rejection."""
    header = message.header
    where = message.location(header)
    message_type, trigger = header.get(9, 1).upper(), header.get(9, 2).upper()
    missing = [number for number in (9, 10, 12) if not header.raw(number)]
    if missing:
        fields = ", ".join(f"MSH-{number}" for number in missing)
        return [Problem(where, f"MSH has no {fields}: the message looks truncated")], "truncated"
    version = header.get(12)
    if version not in SUPPORTED_VERSIONS:
        return [
            Problem(
                f"{where}, field MSH-12",
                f"HL7 version {version} is not supported; supported: 2.3 to 2.8",
            )
        ], "unsupported-version"
    name = f"{message_type}^{trigger}"
    if name not in SUPPORTED_MESSAGE_TYPES:
        return [
            Problem(
                f"{where}, field MSH-9",
                f"message type {name} is not supported; supported: " + ", ".join(SUPPORTED_MESSAGE_TYPES),
            )
        ], "unsupported-message"
    absent = [segment for segment in required_segments(message_type, trigger) if message.one(segment) is None]
    if absent:
        return [
            Problem(
                message.location(),
                f"{name} requires segment {segment} but it is missing: the message looks truncated",
            )
            for segment in absent
        ], "truncated"
    return [], ""


def hl7v2_bundle(body: bytes, *, default_timezone: str = "UTC") -> JSON:
    """Map every message of the payload to one FHIR R4 transaction Bundle (plain dicts)."""
    messages = messages_split(body)
    problems: list[Problem] = []
    kinds: list[str] = []
    entries: list[JSON] = []
    for message in messages:
        found, kind = _message_problems(message)
        if found:
            problems.extend(found)
            kinds.append(kind)
            continue
        mapping = message_map(message, default_timezone=default_timezone)
        if mapping.problems:
            problems.extend(mapping.problems)
            kinds.append("invalid-value")
        entries.extend(mapping.entries)
    if problems:
        raise PayloadRejected(problems, kind=kinds[0])
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def hl7v2_payload_parse(
    body: bytes, *, lookup: IdentifierLookup, default_timezone: str = "UTC"
) -> ParsedPayload:
    """Parse HL7 v2 bytes (one message or a batch) into entries to store, all or nothing.

    ``default_timezone`` places times sent without an offset when MSH-7 carries none either.
    """
    return fhir_document_parse(hl7v2_bundle(body, default_timezone=default_timezone), lookup=lookup)
