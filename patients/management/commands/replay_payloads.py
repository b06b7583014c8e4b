"""python manage.py replay_payloads [--source SLUG] [--mapping FILE] [--all | PAYLOAD_ID ...]"""

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from patients.ingest.processing import payload_replay
from patients.models import InboundPayload


class Command(BaseCommand):
    help = "Send quarantined payloads through processing again, after the cause was fixed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("payload_ids", nargs="*", metavar="PAYLOAD_ID", help="External ids (UUIDs).")
        parser.add_argument("--all", action="store_true", help="Every quarantined payload (of --source).")
        parser.add_argument("--source", help="Only payloads of this source slug.")
        parser.add_argument("--mapping", help="A corrected CSV column mapping to use from now on.")

    def handle(self, *args: Any, **options: Any) -> None:
        payloads = InboundPayload.objects.filter(status=InboundPayload.Status.QUARANTINED)
        if options["source"]:
            payloads = payloads.filter(source__slug=options["source"])
        if options["payload_ids"]:
            payloads = payloads.filter(external_id__in=options["payload_ids"])
        elif not options["all"]:
            raise CommandError("Name payload ids, or pass --all.")
        replay_options = None
        if options["mapping"]:
            try:
                replay_options = {
                    "csv_mapping": json.loads(Path(options["mapping"]).read_text(encoding="utf-8"))
                }
            except (OSError, json.JSONDecodeError) as error:
                raise CommandError(f"cannot read the mapping {options['mapping']}: {error}") from error
        accepted = still = 0
        for payload in payloads.order_by("received_at"):
            replayed = payload_replay(actor=None, payload=payload, options=replay_options)
            replayed.refresh_from_db(fields=["status", "error"])
            if replayed.status == InboundPayload.Status.ACCEPTED:
                accepted += 1
            elif replayed.status == InboundPayload.Status.QUARANTINED:
                still += 1
                self.stdout.write(f"still quarantined {replayed.external_id}: {replayed.error}")
        self.stdout.write(f"Replayed: {accepted} accepted, {still} still quarantined.")
