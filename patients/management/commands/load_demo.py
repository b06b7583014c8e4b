"""python manage.py load_demo: the demo's source systems and their data, through the real ingest pipeline."""

import tempfile
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from patients.models import Source
from patients.services import source_create
from patients.synthetic import CRM_MAPPING, generate_population, write_population, write_synthea_crm_export

DEMO_SOURCES = (
    # slug, name, kind, department
    ("hospital-ehr", "Hospital EHR", Source.Kind.EHR, "Inpatient and emergency care"),
    ("clinic-ehr", "Clinic EHR", Source.Kind.EHR, "Ambulatory clinics"),
    ("crm", "Patient CRM", Source.Kind.CRM, "Patient access and outreach"),
)
DEFAULT_SYNTHEA = Path(settings.BASE_DIR).parent / "shared" / "data" / "synthea-r4"


class Command(BaseCommand):
    help = (
        "Load the demo scenario: the shared Synthea patients (or generated ones) in a hospital EHR (FHIR) and "
        "a CRM export (CSV) that disagrees with it the way real systems do. Safe to run again."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--synthea-dir", type=Path, default=DEFAULT_SYNTHEA)
        parser.add_argument(
            "--people", type=int, default=200, help="Generated people when Synthea is absent."
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        synthea: Path = options["synthea_dir"]
        # Synthea's patients come from one hospital; the generated scenario adds a clinic EHR.
        self._sources_ensure(
            {"hospital-ehr", "crm"} if synthea.is_dir() else {"hospital-ehr", "clinic-ehr", "crm"}
        )
        with tempfile.TemporaryDirectory(prefix="concord-demo-") as scratch:
            out = Path(scratch)
            if synthea.is_dir():
                self.stdout.write(f"Demo data: the Synthea patients in {synthea}")
                write_synthea_crm_export(synthea, out, seed=options["seed"])
                self._ingest("hospital-ehr", synthea)
            else:
                self.stdout.write(f"Demo data: {options['people']} generated people ({synthea} is absent)")
                write_population(generate_population(people=options["people"], seed=options["seed"]), out)
                self._ingest("hospital-ehr", out / "hospital-ehr")
                self._ingest("clinic-ehr", out / "clinic-ehr")
            crm = out / "crm"
            self._ingest("crm", crm / "patients.csv", "--mapping", str(crm / "mapping.json"))

    def _sources_ensure(self, slugs: set[str]) -> None:
        for slug, name, kind, department in DEMO_SOURCES:
            if slug not in slugs or Source.objects.filter(slug=slug).exists():
                continue
            connector_settings = {"csv_mapping": CRM_MAPPING} if kind == Source.Kind.CRM else {}
            source_create(
                actor=None,
                slug=slug,
                name=name,
                kind=kind,
                department=department,
                jurisdiction="MA",
                connector_settings=connector_settings,
            )

    def _ingest(self, slug: str, path: Path, *options: str) -> None:
        call_command("ingest", "--source", slug, *options, str(path), stdout=self.stdout, stderr=self.stderr)
