"""English and German: the browser's language by default, a switcher, localised dates and numbers."""

from datetime import UTC as utc
from datetime import datetime, timedelta

import pytest
from django.urls import reverse

from .factories import CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db


def test_german_browser_gets_german_pages(client_for, marketer):
    LeadFactory()
    response = client_for(marketer).get(reverse("leads:list"), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    assert response.status_code == 200
    assert '<html lang="de">' in response.text
    for text in ["Filtern", "Suche", "Ampel", "Abmelden", "Neueste zuerst"]:
        assert text in response.text


def test_english_browser_gets_english_pages(client_for, marketer):
    response = client_for(marketer).get(reverse("leads:list"), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    assert '<html lang="en">' in response.text
    assert "Traffic light" in response.text


def test_language_switcher_overrides_the_browser(client_for, marketer):
    client = client_for(marketer)
    response = client.post(reverse("set_language"), {"language": "de", "next": reverse("leads:list")})
    assert response.status_code == 302
    response = client.get(reverse("leads:list"), HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="de">' in response.text


def test_login_page_is_translated(client):
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="de")
    assert "Anmelden" in response.text


def test_dates_and_numbers_are_localised(client_for, marketer):
    created = datetime(2026, 3, 9, 10, 0, tzinfo=utc)
    lead = LeadFactory(
        created_at=created, company=CompanyFactory(employee_count=12500, annual_revenue=3_400_000)
    )
    client = client_for(marketer)
    german = client.get(reverse("leads:detail", args=[lead.pk]), HTTP_ACCEPT_LANGUAGE="de").text
    assert "09.03.2026" in german
    assert "12.500" in german
    assert "3.400.000 €" in german
    english = client.get(reverse("leads:detail", args=[lead.pk]), HTTP_ACCEPT_LANGUAGE="en").text
    assert "12,500" in english
    assert "3,400,000 €" in english
    assert "09/03/2026" in english  # day before month, as European English readers expect


def test_lifecycle_and_choice_labels_are_translated(client_for, marketer):
    lead = LeadFactory(stage_id="sql", budget="approved", created_at=datetime.now(utc) - timedelta(days=1))
    german = client_for(marketer).get(reverse("leads:detail", args=[lead.pk]), HTTP_ACCEPT_LANGUAGE="de").text
    assert "SQL – Sales Qualified Lead" in german
    assert "Budget freigegeben" in german
