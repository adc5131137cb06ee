"""Signed email links: the open pixel and click redirects record only genuine, fresh links; no open redirect."""

from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.urls import reverse

from leadcockpit.capture.links import SALT, click_url, make_token, open_pixel_url
from leadcockpit.leads.models import Touchpoint
from leadcockpit.scoring.models import DirtyLead

from .factories import CampaignFactory, LeadFactory

pytestmark = pytest.mark.django_db


def path_of(url):
    """The path of a link the cockpit made (absolute, on SITE_URL), for the test client."""
    return urlsplit(url).path


def test_an_open_is_recorded_once_per_load_for_a_genuine_link(client):
    lead, campaign = LeadFactory(), CampaignFactory()
    response = client.get(path_of(open_pixel_url(lead_id=lead.pk, campaign_id=campaign.pk)))
    assert (response.status_code, response["Content-Type"]) == (200, "image/gif")
    touchpoint = Touchpoint.objects.get()
    assert (touchpoint.lead, touchpoint.campaign, touchpoint.kind) == (lead, campaign, "email_open")
    assert DirtyLead.objects.filter(lead=lead).exists()


def test_a_forged_or_expired_open_link_still_gets_its_pixel_but_records_nothing(client, settings):
    lead = LeadFactory()
    forged = make_token(lead_id=lead.pk)[:-3] + "abc"
    assert client.get(reverse("capture:email_open", args=[forged])).status_code == 200
    assert client.get(reverse("capture:email_open", args=["\x00garbage"])).status_code == 200
    other_salt = signing.dumps({"l": lead.pk, "c": None, "u": ""}, salt="something else")
    assert client.get(reverse("capture:email_open", args=[other_salt])).status_code == 200
    settings.EMAIL_LINK_MAX_AGE = -1  # every link is expired
    assert client.get(path_of(open_pixel_url(lead_id=lead.pk))).status_code == 200
    assert not Touchpoint.objects.exists()


def test_a_click_is_recorded_and_redirected_to_an_allowlisted_target(client):
    lead = LeadFactory()
    target = "https://www.solvaro.example/webinar?utm_campaign=q4"
    response = client.get(path_of(click_url(lead_id=lead.pk, url=target)))
    assert response.status_code == 302
    assert response["Location"] == target
    assert Touchpoint.objects.get().url == target


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "https://solvaro.example.evil.example/",
        "javascript:alert(1)",
        "//evil.example/",
    ],
)
def test_no_open_redirect_even_for_a_correctly_signed_link(client, target):
    lead = LeadFactory()
    with pytest.raises(ValueError, match="EMAIL_LINK_HOSTS"):
        click_url(lead_id=lead.pk, url=target)
    token = signing.dumps({"l": lead.pk, "c": None, "u": target}, salt=SALT, compress=True)  # signed by us
    response = client.get(reverse("capture:email_click", args=[token]))
    assert response.status_code == 404
    assert "Location" not in response
    assert not Touchpoint.objects.exists()


def test_a_forged_click_neither_redirects_nor_records(client):
    lead = LeadFactory()
    token = make_token(lead_id=lead.pk, url="https://www.solvaro.example/")
    response = client.get(reverse("capture:email_click", args=[token[:-2] + "xx"]))
    assert response.status_code == 404
    assert "not valid" in response.text
    assert not Touchpoint.objects.exists()


def test_a_link_for_a_deleted_lead_records_nothing(client):
    lead = LeadFactory()
    url = path_of(open_pixel_url(lead_id=lead.pk))
    lead.delete()
    assert client.get(url).status_code == 200
    assert not Touchpoint.objects.exists()
