import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance.policies.terminology import (
    default_map_entries,
    terminology_maps_build,
    terminology_maps_current,
)
from governance.reports import fhir_json_files, terminology_coverage


class Command(BaseCommand):
    help = (
        "Terminology coverage of FHIR files: vital signs ending with LOINC + UCUM, medications resolved to "
        "ingredients, and what stays unmapped. Reads files only; stores nothing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help="FHIR JSON files or directories.")
        parser.add_argument("--json", action="store_true", help="Print the report as one JSON object.")
        parser.add_argument(
            "--shipped-maps",
            action="store_true",
            help="Use the shipped default maps instead of the database's (no database needed).",
        )
        parser.add_argument("--top", type=int, default=30, help="Unmapped codes to list (default 30).")

    def handle(self, *args: Any, **options: Any) -> None:
        missing = [str(path) for path in options["paths"] if not path.exists()]
        if missing:
            raise CommandError(f"not found: {', '.join(missing)}")
        maps = (
            terminology_maps_build(default_map_entries())
            if options["shipped_maps"]
            else terminology_maps_current()
        )
        report = terminology_coverage(fhir_json_files(options["paths"]), maps=maps)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        data = report.as_dict()
        vitals, medications = data["vital_signs"], data["medications"]
        self.stdout.write(f"{report.files} files, {report.resources} resources")
        self.stdout.write(
            f"vital signs: {vitals['coded_loinc_ucum']}/{vitals['total']} coded with LOINC + UCUM "
            f"({vitals['percent']}%), {vitals['text_unreadable']} unreadable text"
        )
        for label in vitals["not_coded"]:
            self.stdout.write(f"  not coded: {label}")
        self.stdout.write(
            f"medications: {medications['resolved_to_ingredient']}/{medications['total']} resolved to an "
            f"ingredient ({medications['percent']}%), {medications['with_ingredient_rxnorm_code']} with an "
            f"ingredient RxNorm code, {medications['by_fuzzy_name']} by fuzzy name"
        )
        for label in medications["unresolved"]:
            self.stdout.write(f"  unresolved: {label}")
        self.stdout.write(f"labs with units normalized: {data['labs_unit_normalized']}")
        self.stdout.write(f"unmapped ({len(report.unmapped)} distinct, top {options['top']}):")
        for label, count in report.unmapped.most_common(options["top"]):
            self.stdout.write(f"  {count:6d}  {label}")
        self.stdout.write(
            f"normalization time: {report.seconds_base:.3f}s formats, {report.seconds_terminology:.3f}s terminology"
        )
