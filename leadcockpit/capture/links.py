"""Signed links for email: an open pixel and click redirects per lead and campaign.

A token is the lead, the campaign and (for clicks) the target, signed with HMAC (django.core.signing, salted)
and dated; it is good for EMAIL_LINK_MAX_AGE. A forged or expired token still gets its pixel but records
nothing, and a click only ever redirects to a host on EMAIL_LINK_HOSTS: the link is no open redirect.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "leadcockpit.capture.email-link"


def make_token(*, lead_id, campaign_id=None, url=""):
    return signing.dumps({"l": lead_id, "c": campaign_id, "u": url}, salt=SALT, compress=True)


def read_token(token):
    """(lead id, campaign id, url) from a good token, or None for a forged, damaged or expired one."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.EMAIL_LINK_MAX_AGE)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("l"), int):
        return None
    campaign = data.get("c") if isinstance(data.get("c"), int) else None
    url = data.get("u") if isinstance(data.get("u"), str) else ""
    return data["l"], campaign, url


def allowed_target(url):
    """Whether a click may redirect there: http(s) to a host on EMAIL_LINK_HOSTS (or a subdomain of one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    return any(host == allowed or host.endswith("." + allowed) for allowed in settings.EMAIL_LINK_HOSTS)


def open_pixel_url(*, lead_id, campaign_id=None):
    return settings.SITE_URL + reverse(
        "capture:email_open", args=[make_token(lead_id=lead_id, campaign_id=campaign_id)]
    )


def click_url(*, lead_id, url, campaign_id=None):
    if not allowed_target(url):
        raise ValueError(f"{url!r} is not on EMAIL_LINK_HOSTS")
    token = make_token(lead_id=lead_id, campaign_id=campaign_id, url=url)
    return settings.SITE_URL + reverse("capture:email_click", args=[token])
