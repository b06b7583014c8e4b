"""python manage.py ingest --source SLUG [--format fhir|csv|hl7v2] [--mapping FILE] [--json] PATH..."""

import json
import time
from argparse import ArgumentParser
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.progress import ProgressBar
from patients.ingest.processing import payload_receive, payload_replay
from patients.models import InboundPayload, Source
from patients.services import source_ensure

EXTENSIONS = {".json": "fhir", ".csv": "csv", ".tsv": "csv", ".hl7": "hl7v2"}
LONG_RUN_FILES = 20


def format_detect(path: Path, head: bytes) -> str:
    """The payload format from the file extension, else from its first bytes."""
    if path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:1] in (b"{", b"["):
        return "fhir"
    if start[:4] in (b"MSH|", b"FHS|", b"BHS|"):
        return "hl7v2"
    return "csv"


def files_under(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{raw}: no such file or directory")
    return found


class Command(BaseCommand):
    help = "Ingest FHIR R4 JSON, CSV exports or HL7 v2 files (directories are recursed) for one source."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument(
            "--source", required=True, help="Source slug; an unknown one is created (kind other)."
        )
        parser.add_argument(
            "--format", choices=["fhir", "csv", "hl7v2"], help="Detected from each file if absent."
        )
        parser.add_argument("--mapping", help="JSON column mapping for CSV files (see README).")
        parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object.")
        parser.add_argument("--wait-timeout", type=float, default=3600.0, help="Seconds to wait for workers.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        files = files_under(options["paths"])
        source, created = source_ensure(actor=None, slug=options["source"])
        if created:
            self.stderr.write(
                self.style.WARNING(f"Source {source.slug!r} was unknown: created it with kind 'other'.")
            )
        mapping_options = self._mapping_options(options.get("mapping"))

        progress = ProgressBar(len(files), label="landing", minimum=LONG_RUN_FILES)
        landed: list[tuple[Path, int, bool]] = []  # ids, not payloads: the bodies are not kept in memory
        for done, path in enumerate(files, start=1):
            body = path.read_bytes()
            payload_format = options.get("format") or format_detect(path, body[:64])
            payload, is_new = payload_receive(
                source=source,
                body=body,
                format=payload_format,
                channel=InboundPayload.Channel.FILE,
                content_type={"fhir": "application/fhir+json", "csv": "text/csv"}.get(payload_format, ""),
                origin=str(path),
                options=mapping_options if payload_format == "csv" else None,
            )
            landed.append((path, payload.pk, is_new))
            progress.update(done)

        new_ids = [payload_id for _, payload_id, is_new in landed if is_new]
        self._wait(new_ids, timeout=options["wait_timeout"])
        self._retry_unresolved(new_ids, timeout=options["wait_timeout"])
        summary = self._summary(source, created, landed, elapsed=time.monotonic() - started)
        if options["json"]:
            self.stdout.write(json.dumps(summary, sort_keys=True))
        else:
            self._print(summary)

    def _mapping_options(self, mapping_path: str | None) -> dict[str, Any]:
        if not mapping_path:
            return {}
        try:
            text = Path(mapping_path).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot read the mapping file {mapping_path}: {error.strerror}") from error
        try:
            return {"csv_mapping": json.loads(text)}
        except json.JSONDecodeError as error:
            # The CSV is still landed (nothing is lost); it waits in quarantine for a corrected mapping.
            return {
                "csv_mapping_error": f"the mapping file is not valid JSON (line {error.lineno}): {error.msg}"
            }

    def _wait(self, payload_ids: list[int], *, timeout: float) -> None:
        """With a broker the workers process in the background: wait until every payload has an outcome."""
        if settings.CELERY_TASK_ALWAYS_EAGER or not payload_ids:
            return
        deadline = time.monotonic() + timeout
        progress = ProgressBar(len(payload_ids), label="processing", minimum=LONG_RUN_FILES)
        pending = InboundPayload.objects.filter(pk__in=payload_ids, status=InboundPayload.Status.RECEIVED)
        while (remaining := pending.count()) and time.monotonic() < deadline:
            progress.update(len(payload_ids) - remaining)
            time.sleep(0.25)
        progress.update(len(payload_ids) - pending.count())
        if pending.exists():
            raise CommandError(f"{pending.count()} payloads still wait for a worker after {timeout:.0f}s")

    def _retry_unresolved(self, payload_ids: list[int], *, timeout: float) -> None:
        """Files are read in name order; a reference to a record that came later in the run resolves now."""
        waiting = list(
            InboundPayload.objects.filter(
                pk__in=payload_ids,
                status=InboundPayload.Status.QUARANTINED,
                outcome__kind="unresolved-reference",
            )
        )
        for payload in waiting:
            payload_replay(actor=None, payload=payload)
        self._wait([payload.pk for payload in waiting], timeout=timeout)

    def _summary(
        self,
        source: Source,
        created: bool,
        landed: list[tuple[Path, int, bool]],
        *,
        elapsed: float,
    ) -> dict[str, Any]:
        ids = [payload_id for _, payload_id, is_new in landed if is_new]
        fresh = {payload.pk: payload for payload in InboundPayload.objects.filter(pk__in=ids)}
        stored: Counter[str] = Counter()
        unchanged: Counter[str] = Counter()
        quarantined = []
        accepted = pending = 0
        for path, payload_id, is_new in landed:
            if not is_new:
                continue
            current = fresh[payload_id]
            stored.update(current.outcome.get("stored", {}))
            unchanged.update(current.outcome.get("unchanged", {}))
            if current.status == InboundPayload.Status.ACCEPTED:
                accepted += 1
            elif current.status == InboundPayload.Status.RECEIVED:
                pending += 1
            else:
                quarantined.append(
                    {
                        "file": str(path),
                        "payload": str(current.external_id),
                        "reason": current.error,
                        "problems": current.problems[:10],
                        "problem_count": len(current.problems),
                    }
                )
        total_stored = sum(stored.values())
        return {
            "source": source.slug,
            "source_created": created,
            "payloads": {
                "received": len(landed),
                "accepted": accepted,
                "duplicate": sum(1 for _, _, is_new in landed if not is_new),
                "quarantined": len(quarantined),
                "pending": pending,
            },
            "quarantined": quarantined,
            "resources_stored": dict(sorted(stored.items())),
            "resources_unchanged": dict(sorted(unchanged.items())),
            "resources_stored_total": total_stored,
            "elapsed_seconds": round(elapsed, 3),
            "resources_per_second": round(total_stored / elapsed, 1) if elapsed > 0 else None,
        }

    def _print(self, summary: dict[str, Any]) -> None:
        counts = summary["payloads"]
        self.stdout.write(
            f"Source {summary['source']}: {counts['received']} payloads received, {counts['accepted']} accepted, "
            f"{counts['duplicate']} duplicate, {counts['quarantined']} quarantined "
            f"({summary['elapsed_seconds']}s)"
        )
        if summary["resources_stored"]:
            self.stdout.write("Resources stored by type:")
            for resource_type, count in summary["resources_stored"].items():
                self.stdout.write(f"  {resource_type:<28} {count:>8}")
        if summary["resources_unchanged"]:
            unchanged = sum(summary["resources_unchanged"].values())
            self.stdout.write(f"Resources already stored and unchanged: {unchanged}")
        for item in summary["quarantined"]:
            self.stdout.write(self.style.ERROR(f"Quarantined {item['file']}: {item['reason']}"))
            for problem in item["problems"][1:5]:
                self.stdout.write(f"    {problem['location']}: {problem['message']}")
            if item["problem_count"] > 5:
                self.stdout.write(f"    ... and {item['problem_count'] - 5} more problems")
