from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from patients.models import Source
from patients.services import source_token_issue


class Command(BaseCommand):
    help = "Issue a new FHIR push API token for a source and print it (the previous token stops working)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(slug=options["slug"]).first()
        if source is None:
            raise CommandError(f"No source with slug {options['slug']!r}.")
        self.stdout.write(source_token_issue(actor=None, source=source))
