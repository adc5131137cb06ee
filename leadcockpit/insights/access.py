"""Who may open the cockpit: managers, marketing and admins. Sales reps get 403 (their own numbers live in the
inbox and the lead list); the cockpit shows organisation-wide aggregates, never single leads."""

from functools import wraps

from django.core.exceptions import PermissionDenied

from leadcockpit.accounts.roles import Role, role_of

COCKPIT_ROLES = (Role.ADMIN, Role.MARKETING, Role.SALES_MANAGER)


def can_see_cockpit(user):
    return role_of(user) in COCKPIT_ROLES


def cockpit_required(view):
    """Refuse signed-in users whose role may not open the cockpit (403); put it under @login_required."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not can_see_cockpit(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
