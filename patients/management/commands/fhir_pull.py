"""python manage.py fhir_pull --source SLUG [--since ISO-DATETIME] [--json]"""

import json
from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from patients.models import Source
from patients.pull.errors import PullError
from patients.pull.services import source_pull
from patients.pull.summary import PullSummary


def since_parse(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is read as UTC."""
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since {value!r} is not an ISO 8601 date or date-time")
        parsed = datetime(day.year, day.month, day.day)  # noqa: DTZ001 -- made aware just below
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Pull new and updated resources from a source's FHIR server (connector_settings.fhir_pull)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--source", required=True, help="Slug of a source with fhir_pull settings.")
        parser.add_argument(
            "--since", help="Pull what changed after this ISO date-time instead of after the checkpoint."
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(slug=options["source"]).first()
        if source is None:
            raise CommandError(f"no source with slug {options['source']!r}")
        since = since_parse(options["since"]) if options.get("since") else None
        try:
            summary = source_pull(actor=None, source=source, since=since)
        except PullError as error:
            if error.summary is not None:
                self._report(error.summary, as_json=options["json"], failure=error.message)
            raise CommandError(f"the pull of {source.slug} stopped: {error.message}") from error
        self._report(summary, as_json=options["json"], failure="")

    def _report(self, summary: PullSummary, *, as_json: bool, failure: str) -> None:
        result = {**summary.as_dict(), "failure": failure}
        if as_json:
            self.stdout.write(json.dumps(result, sort_keys=True))
            return
        self.stdout.write(
            f"Source {result['source']}: {result['pages']} pages, {result['payloads_stored']} payloads stored, "
            f"{result['duplicates']} duplicate pages, {len(result['errors'])} quarantined"
        )
        if result["resources_stored"]:
            self.stdout.write("Resources stored by type:")
            for resource_type, count in result["resources_stored"].items():
                self.stdout.write(f"  {resource_type:<28} {count:>8}")
        unchanged = sum(result["resources_unchanged"].values())
        if unchanged:
            self.stdout.write(f"Resources already stored and unchanged: {unchanged}")
        for error in result["errors"]:
            self.stdout.write(
                self.style.ERROR(
                    f"Quarantined payload {error['payload']} ({error['kind']}, {error['problem_count']} problems)"
                )
            )
