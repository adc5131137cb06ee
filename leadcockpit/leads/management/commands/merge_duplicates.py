import json

from django.core.management.base import BaseCommand

from leadcockpit.leads.actions import merge_duplicate_leads


class Command(BaseCommand):
    help = (
        "Find leads that share a canonical email address (another spelling of one mailbox) and, with --apply, "
        "merge each group into its oldest lead. Without --apply only lists what it would merge."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--apply", action="store_true", help="Merge (default: a dry run that changes nothing)."
        )
        parser.add_argument("--reason", default="duplicate address", help="Recorded with each merge.")
        parser.add_argument(
            "--show", type=int, default=20, help="List at most this many groups (default 20)."
        )

    def handle(self, *args, apply, reason, show, **options):
        groups, merged, refused = merge_duplicate_leads(system="merge_duplicates", reason=reason, apply=apply)
        for group in groups[:show]:
            self.stdout.write(f"keep #{group[0]} ← " + ", ".join(f"#{pk}" for pk in group[1:]))
        if len(groups) > show:
            self.stdout.write(f"… and {len(groups) - show} more groups")
        for group, why in refused:
            self.stderr.write(f"not merged {group}: {why}")
        duplicates = sum(len(group) - 1 for group in groups)
        verb = "merged" if apply else "would merge (dry run; --apply to merge)"
        self.stdout.write(
            f"{len(groups)} groups, {duplicates} duplicate leads; {verb}: {merged if apply else duplicates}"
        )
        self.stdout.write(
            json.dumps(
                {
                    "groups": len(groups),
                    "duplicates": duplicates,
                    "merged": merged,
                    "refused": len(refused),
                    "applied": apply,
                }
            )
        )
