import base64
import logging

from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from leadcockpit.leads.models import Campaign, Lead, Touchpoint
from leadcockpit.scoring.actions import mark_dirty

from .links import allowed_target, read_token

log = logging.getLogger(__name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _record(lead_id, campaign_id, kind, url=""):
    """A touchpoint for a lead that still exists (a campaign that no longer does is left out)."""
    if not Lead.objects.filter(pk=lead_id).exists():
        return
    if campaign_id and not Campaign.objects.filter(pk=campaign_id).exists():
        campaign_id = None
    now = timezone.now()
    with transaction.atomic():
        Touchpoint.objects.create(
            lead_id=lead_id,
            campaign_id=campaign_id,
            kind=kind,
            url=url[:2048],
            occurred_at=now,
            received_at=now,
        )
        mark_dirty(lead_ids=[lead_id])


@never_cache
@require_GET
def email_open(request, token):
    """The open pixel: always a 1×1 GIF; an open is recorded only for a good token."""
    found = read_token(token)
    if found:
        lead_id, campaign_id, _url = found
        _record(lead_id, campaign_id, Touchpoint.Kind.EMAIL_OPEN)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def email_click(request, token):
    """A click: recorded and redirected only for a good token whose target is on the allowlist."""
    found = read_token(token)
    if not found or not allowed_target(found[2]):
        return render(request, "capture/link_invalid.html", status=404)
    lead_id, campaign_id, url = found
    _record(lead_id, campaign_id, Touchpoint.Kind.EMAIL_CLICK, url)
    return HttpResponseRedirect(url)


@require_GET
def snippet_demo(request):
    """A page that uses the tracking snippet, for trying it (and for its browser test). The key comes from the
    query: keys used in browsers are public and bound to origins."""
    return render(request, "capture/snippet_demo.html", {"key": request.GET.get("key", "")[:200]})
