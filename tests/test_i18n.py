"""English and German: the browser's language by default, a switcher, localised dates and numbers."""

import io
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


def test_the_import_page_and_its_excel_advice_are_in_german(client_for, marketer):
    client = client_for(marketer)
    page = client.get(reverse("capture:imports"), HTTP_ACCEPT_LANGUAGE="de").text
    for text in ["Import aus CSV", "CSV-Datei", "Hochladen und Spalten zuordnen", "Letzte Importe"]:
        assert text in page
    workbook = io.BytesIO(b"PK\x03\x04\x14\x00\x08\x08" + bytes(range(256)) * 4)
    workbook.name = "Leads.csv"

    response = client.post(
        reverse("capture:imports"), {"kind": "leads", "file": workbook}, HTTP_ACCEPT_LANGUAGE="de"
    )

    assert response.status_code == 422
    assert "Dies ist eine Excel-Arbeitsmappe, keine CSV-Datei" in response.text
    assert "„CSV UTF-8 (durch Trennzeichen getrennt)“" in response.text
    assert "Excel workbook" not in response.text


def test_the_mapping_and_the_preview_of_an_import_are_in_german(client_for, marketer):
    client = client_for(marketer)
    upload = io.BytesIO(b"email;first_name\nkeine-adresse;Mia\n")
    upload.name = "leads.csv"
    response = client.post(
        reverse("capture:imports"), {"kind": "leads", "file": upload}, HTTP_ACCEPT_LANGUAGE="de"
    )
    assert response.status_code == 302

    page = client.get(response.url, HTTP_ACCEPT_LANGUAGE="de").text

    for text in ["1 Zeile", "durch Semikolon getrennt", "Vorschau der ersten Zeilen", "wird abgelehnt"]:
        assert text in page
    assert "ist keine E-Mail-Adresse" in page
