from typing import Any

from django.core.management.base import BaseCommand

from governance.services import terminology_defaults_load


class Command(BaseCommand):
    help = "Create or update the shipped default terminology maps (stewards' maps are left as they are)."

    def handle(self, *args: Any, **options: Any) -> None:
        created, updated = terminology_defaults_load()
        self.stdout.write(f"{created} shipped maps created, {updated} updated")
