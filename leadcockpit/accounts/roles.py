"""The four roles of the cockpit, kept as auth groups, and what each may do.

The groups are created by a migration from ROLE_PERMISSIONS; the demo seed and admins put users in them.
"""

from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class Role(StrEnum):
    ADMIN = "admin"
    MARKETING = "marketing"
    SALES_MANAGER = "sales manager"
    SALES_REP = "sales rep"

    @property
    def label(self):
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.ADMIN: _("Admin"),
    Role.MARKETING: _("Marketing"),
    Role.SALES_MANAGER: _("Sales manager"),
    Role.SALES_REP: _("Sales rep"),
}

# Strongest first: a user in several groups acts with the strongest role.
ROLE_PRECEDENCE = [Role.ADMIN, Role.SALES_MANAGER, Role.MARKETING, Role.SALES_REP]

# Django model permissions per role ("app_label.codename"); object-level scope is decided in QuerySets.
_VIEW_ALL = [
    "leads.view_company",
    "leads.view_lead",
    "leads.view_touchpoint",
    "leads.view_salesactivity",
    "leads.view_campaign",
    "leads.view_stagechange",
    "leads.view_channel",
    "leads.view_lifecyclestage",
]
_SCORING_VIEW = [
    "scoring.view_scoringmodel",
    "scoring.view_scoringversion",
    "scoring.view_criterion",
    "scoring.view_approval",
    "scoring.view_scorechange",
    "scoring.view_rescorejob",
]
_HANDOVER_VIEW = ["handover.view_handover", "handover.view_routingrule", "handover.view_teamrouting"]
# Managers set up routing for their teams: rules, strategy and deadline, reps' capacity and absence.
_HANDOVER_MANAGE = [
    "handover.add_routingrule",
    "handover.change_routingrule",
    "handover.delete_routingrule",
    "handover.add_teamrouting",
    "handover.change_teamrouting",
    "handover.view_repavailability",
    "handover.add_repavailability",
    "handover.change_repavailability",
]
ROLE_PERMISSIONS = {
    Role.ADMIN: "__all__",
    # Marketing owns the record and campaigns, and reads the sales protocol without changing it.
    Role.MARKETING: [
        *_VIEW_ALL,
        *_SCORING_VIEW,
        "scoring.add_scoringmodel",
        "scoring.change_scoringmodel",
        "scoring.change_scoringversion",
        "scoring.add_criterion",
        "scoring.change_criterion",
        "scoring.delete_criterion",
        "leads.add_company",
        "leads.change_company",
        "leads.add_lead",
        "leads.change_lead",
        "leads.add_campaign",
        "leads.change_campaign",
        *_HANDOVER_VIEW,
    ],
    Role.SALES_MANAGER: [
        *_VIEW_ALL,
        *_SCORING_VIEW,
        *_HANDOVER_VIEW,
        *_HANDOVER_MANAGE,
        "leads.add_salesactivity",
        "leads.change_salesactivity",
    ],
    Role.SALES_REP: [
        *_VIEW_ALL,
        "handover.view_handover",
        "leads.add_salesactivity",
        "leads.change_salesactivity",
    ],
}


def role_of(user) -> Role | None:
    """The user's effective role, or None for anonymous users and users without a role."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_role_cache", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in ROLE_PRECEDENCE if r.value in names), None)
    user._role_cache = role
    return role


def sync_role_groups(apps, schema_editor=None):
    """Create the role groups and give each exactly the permissions ROLE_PERMISSIONS lists (used by migrations)."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; make sure the ones we assign exist already.
    for app_config in apps.get_app_configs():
        # Historical app configs carry no models_module, which create_permissions would take as "no models".
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        if wanted == "__all__":
            perms = Permission.objects.all()
        else:
            # Early migrations run before later apps' models exist; their permissions are granted by the
            # migration that follows them (each app adds one calling this function).
            pairs = [name.split(".") for name in wanted]
            perms = [
                perm
                for app, codename in pairs
                for perm in Permission.objects.filter(content_type__app_label=app, codename=codename)
            ]
        group.permissions.set(perms)
