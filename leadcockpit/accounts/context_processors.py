from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from .roles import Role, role_of


def navigation(request):
    """The navigation entries this user may open; only pages that exist and that the role can use."""
    user = getattr(request, "user", None)
    if user is None or role_of(user) is None:
        return {"nav_items": [], "user_role": None}
    items = []
    if role_of(user) in (Role.SALES_REP, Role.SALES_MANAGER, Role.ADMIN):
        items.append(("handover", _("Inbox"), reverse("handover:inbox")))
    items += [
        ("leads", _("Leads"), reverse("leads:list")),
        ("scoring", _("Scoring"), reverse("scoring:overview")),
    ]
    if role_of(user) in (Role.MARKETING, Role.ADMIN):
        items.append(("capture", _("Import"), reverse("capture:imports")))
    if role_of(user) in (Role.MARKETING, Role.SALES_MANAGER, Role.ADMIN):
        items.append(("feedback", _("Sales feedback"), reverse("handover:feedback")))
        items.append(("insights", _("Cockpit"), reverse("insights:cockpit")))
    if role_of(user) in (Role.SALES_MANAGER, Role.ADMIN):
        items.append(("routing", _("Routing"), reverse("handover:routing")))
    if user.is_staff:
        items.append(("admin", _("Admin"), reverse("admin:index")))
    return {"nav_items": items, "user_role": role_of(user)}
