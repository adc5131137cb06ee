import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from leadcockpit.leads.models import Lead, normalise_email, validate_properties_size

from .factories import CompanyFactory, LeadFactory, StageChangeFactory, TouchpointFactory

pytestmark = pytest.mark.django_db


def test_email_is_normalised_before_it_is_stored():
    assert normalise_email("  Anna.Schulz@Firma.DE ") == "anna.schulz@firma.de"
    lead = Lead(email=" Anna@Firma.DE", stage_id="mgl")
    lead.full_clean(exclude=["company"])
    assert lead.email == "anna@firma.de"


def test_database_refuses_an_email_that_is_not_lower_case():
    with pytest.raises(IntegrityError), transaction.atomic():
        LeadFactory(email="Anna@Firma.de")


def test_the_same_email_cannot_exist_twice():
    LeadFactory(email="anna@firma.de")
    with pytest.raises(IntegrityError), transaction.atomic():
        LeadFactory(email="anna@firma.de")


def test_client_event_id_is_unique():
    first = TouchpointFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        TouchpointFactory(client_event_id=first.client_event_id)


def test_company_domain_is_unique_but_many_companies_may_have_none():
    CompanyFactory(domain="")
    CompanyFactory(domain="")
    CompanyFactory(domain="firma.de")
    with pytest.raises(IntegrityError), transaction.atomic():
        CompanyFactory(domain="firma.de")


def test_touchpoint_properties_are_size_capped():
    validate_properties_size({"asset": "guide.pdf"})
    with pytest.raises(ValidationError):
        validate_properties_size({"blob": "x" * 3000})
    with pytest.raises(ValidationError):
        validate_properties_size(["not", "an", "object"])


def test_stage_change_needs_a_user_or_a_system_actor():
    with pytest.raises(IntegrityError), transaction.atomic():
        StageChangeFactory(system_actor="", actor=None)


def test_stage_change_shows_who_made_it(rep):
    assert StageChangeFactory(system_actor="scoring").actor_display == "scoring"
    assert StageChangeFactory(actor=rep, system_actor="").actor_display == str(rep)


def test_reference_data_speaks_the_active_language():
    from django.utils import translation

    from leadcockpit.leads.models import LifecycleStage

    stage = LifecycleStage.objects.get(code="needs_analysis")
    with translation.override("de"):
        assert str(stage) == "Bedarfsanalyse"
    with translation.override("en"):
        assert str(stage) == "Needs analysis"
