"""API keys in the admin: created and rotated in the browser, the secret shown once, origins checked."""

import re
import uuid

import pytest
from django.utils import timezone

from leadcockpit.capture.models import ApiKey
from leadcockpit.leads.models import Touchpoint

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"lc_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
CHANGELIST = "/admin/capture/apikey/"


def send_event(client, key, **headers):
    body = {
        "event_id": str(uuid.uuid4()),
        "type": "page_view",
        "occurred_at": timezone.now().isoformat(),
        "email": "anna@firma.example",
    }
    return client.post("/api/v1/events", body, content_type="application/json", HTTP_X_API_KEY=key, **headers)


def rotate(client, *keys):
    return client.post(
        CHANGELIST, {"action": "rotate", "_selected_action": [key.pk for key in keys]}, follow=True
    )


def test_rotating_a_key_gives_a_working_new_key_and_the_old_one_gets_401(client_for, admin_user):
    old, old_secret = ApiKey.issue(name="Website", allowed_origins=["https://www.example.com"])
    client = client_for(admin_user)

    response = rotate(client, old)

    assert response.status_code == 200
    shown = SECRET.findall(response.text)
    assert len(shown) == 1
    new_secret = shown[0]
    assert new_secret != old_secret
    new = ApiKey.objects.active().get()
    assert (new.name, new.allowed_origins, new.created_by) == (
        "Website",
        ["https://www.example.com"],
        admin_user,
    )
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert f"lc_{old.prefix}_" in response.text  # which key stopped working

    assert send_event(client, old_secret).status_code == 401
    assert send_event(client, new_secret).status_code == 202
    assert send_event(client, new_secret, HTTP_ORIGIN="https://www.example.com").status_code == 202
    assert Touchpoint.objects.count() == 2
    # Shown once: the next page has no secret.
    assert not SECRET.search(client.get(CHANGELIST).text)


def test_a_revoked_key_is_not_rotated_back_to_life(client_for, admin_user):
    old, _secret = ApiKey.issue(name="Website")
    old.revoke()
    response = rotate(client_for(admin_user), old)
    assert "A revoked key cannot be rotated." in response.text
    assert not SECRET.search(response.text)
    assert ApiKey.objects.count() == 1


def test_rotating_several_keys_shows_each_new_secret_once(client_for, admin_user):
    keys = [ApiKey.issue(name=name)[0] for name in ("Website", "Newsletter tool")]
    response = rotate(client_for(admin_user), *keys)
    assert len(set(SECRET.findall(response.text))) == 2
    assert sorted(ApiKey.objects.active().values_list("name", flat=True)) == ["Newsletter tool", "Website"]


def test_only_admins_may_rotate(client_for, marketer):
    key, _secret = ApiKey.issue(name="Website")
    response = client_for(marketer).post(CHANGELIST, {"action": "rotate", "_selected_action": [key.pk]})
    assert response.status_code in (302, 403)
    assert ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ("https://www.example.com/", "has a path"),
        ("https://www.example.com/pricing", "has a path"),
        ("https://www.example.com?x=1", "has a path"),
        ("www.example.com", "must start with https:// or http://"),
        ("ftp://files.example.com", "must start with https:// or http://"),
        ("https://user@www.example.com", "without a user name"),
        ("https://www.example.com:99999", "is not an origin"),
        ("https://exa mple.com", "does not name a valid host"),
        ("https://" + "a" * 200 + ".example", "longer than 200 characters"),
    ],
)
def test_an_origin_that_is_not_scheme_and_host_is_a_form_error(client_for, admin_user, origin, message):
    response = client_for(admin_user).post(
        "/admin/capture/apikey/add/", {"name": "Website", "allowed_origins": f"https://ok.example\n{origin}"}
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["allowed_origins"]
    assert any(message in error for error in errors)
    assert message in response.text
    assert not ApiKey.objects.exists()


def test_origins_are_saved_the_way_browsers_send_them(client_for, admin_user):
    client = client_for(admin_user)
    response = client.post(
        "/admin/capture/apikey/add/",
        {
            "name": "Website",
            "allowed_origins": "HTTPS://WWW.Example.com:443\n\nhttp://localhost:8000\nhttps://www.example.com",
        },
        follow=True,
    )
    assert response.status_code == 200
    key = ApiKey.objects.get()
    assert key.allowed_origins == ["https://www.example.com", "http://localhost:8000"]
    secret = SECRET.findall(response.text)[0]
    assert send_event(client, secret, HTTP_ORIGIN="https://www.example.com").status_code == 202

    # Editing shows them one per line and keeps them.
    change = client.get(f"/admin/capture/apikey/{key.pk}/change/")
    assert "https://www.example.com\nhttp://localhost:8000</textarea>" in change.text
    client.post(
        f"/admin/capture/apikey/{key.pk}/change/",
        {"name": "Website (www)", "allowed_origins": "https://www.example.com\nhttp://localhost:8000"},
    )
    key.refresh_from_db()
    assert (key.name, key.allowed_origins) == (
        "Website (www)",
        ["https://www.example.com", "http://localhost:8000"],
    )
