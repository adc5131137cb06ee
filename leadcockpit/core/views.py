from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.db.models import Max
from django.http import JsonResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from leadcockpit.accounts.roles import Role, role_of

from .models import WorkerHeartbeat


@require_GET
@login_required
def home(request):
    """Where a user starts: a sales rep in their inbox, everyone else in the lead list."""
    return redirect("handover:inbox" if role_of(request.user) == Role.SALES_REP else "leads:list")


@never_cache
@require_GET
def health(request):
    """Liveness for load balancers: 200 while the database answers; cache and workers reported, not fatal."""
    status = {"database": "ok", "cache": "ok", "worker": "unknown", "worker_last_seen_s": None}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        last = WorkerHeartbeat.objects.aggregate(last=Max("beat_at"))["last"]
    except DatabaseError:
        status["database"] = "down"
        return JsonResponse(status, status=503)
    try:
        cache.set("health-probe", "1", 10)
        if cache.get("health-probe") != "1":
            status["cache"] = "down"
    except Exception:  # noqa: BLE001 - any cache failure means "down", never a 500
        status["cache"] = "down"
    if last is not None:
        age = (timezone.now() - last).total_seconds()
        status["worker_last_seen_s"] = round(age)
        status["worker"] = "ok" if age <= settings.WORKER_HEARTBEAT_STALE_AFTER_S else "stale"
    return JsonResponse(status)
