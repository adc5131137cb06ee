from datetime import timedelta

from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from leadcockpit.accounts.roles import Role, role_of

REVIEWERS = (Role.ADMIN, Role.MARKETING, Role.SALES_MANAGER)


def review_reminders(request):
    """`review_due`: the active versions older than their model's review period, for the people who review them.

    Lazy: a page that never shows the banner (an htmx fragment, say) runs no query, and reps never do.
    """
    user = getattr(request, "user", None)
    if user is None or role_of(user) not in REVIEWERS:
        return {}
    return {"review_due": SimpleLazyObject(_due_versions)}


def _due_versions():
    from .models import ScoringVersion

    now = timezone.now()
    # One row per model at most (one active version each), so the age is compared here, not in SQL.
    active = ScoringVersion.objects.filter(status=ScoringVersion.Status.ACTIVE, activated_at__isnull=False)
    return [
        version
        for version in active.select_related("model").order_by("model__priority", "model_id")
        if version.activated_at + timedelta(days=version.model.review_after_days) < now
    ]
