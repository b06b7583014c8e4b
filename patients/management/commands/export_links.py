import csv
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from patients.models import InboundPayload, PatientLink

HEADER = ("source", "source_record_id", "patient_id", "state", "score")


class Command(BaseCommand):
    help = "Write every source record's link to its golden patient as CSV (source,source_record_id,patient_id,state,score)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, help="File to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["out"]:
            with options["out"].open("w", encoding="utf-8", newline="") as handle:
                count = self._write(handle)
            self.stderr.write(f"{count} links written to {options['out']}")
        else:
            self._write(sys.stdout)

    def _write(self, handle: TextIO) -> int:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        rows = (
            PatientLink.objects.order_by("source_patient__source__slug", "source_patient__source_record_id")
            .values_list(
                "source_patient__source__slug",
                "source_patient__source_record_id",
                "patient__external_id",
                "state",
                "score",
                "source_patient__payload__format",
                KeyTextTransform(
                    "value", KeyTransform("0", KeyTransform("identifier", "source_patient__resource"))
                ),
            )
            .iterator(chunk_size=5000)
        )
        count = 0
        for slug, record_id, patient_id, state, score, payload_format, first_identifier in rows:
            if payload_format == InboundPayload.Format.HL7V2 and first_identifier:
                # HL7 v2 records are stored under an id derived from PID-3; the source knows them by PID-3.
                record_id = first_identifier
            writer.writerow((slug, record_id, patient_id, state, "" if score is None else f"{score:.6f}"))
            count += 1
        return count
