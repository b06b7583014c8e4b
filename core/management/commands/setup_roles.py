from django.core.management.base import BaseCommand

from core.services import roles_sync


class Command(BaseCommand):
    help = (
        "Create or update the staff role groups (Care coordinator, Data steward, Executive, Administrator)."
    )

    def handle(self, *args: object, **options: object) -> None:
        groups = roles_sync()
        self.stdout.write(self.style.SUCCESS(f"Roles in place: {', '.join(g.name for g in groups)}"))
