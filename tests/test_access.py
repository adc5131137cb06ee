"""Who sees which lead: one helper decides, every URL goes through it."""

import pytest
from django.urls import reverse

from leadcockpit.leads.models import Lead, SalesActivity, StageChange, Touchpoint

from .factories import LeadFactory, SalesActivityFactory, StageChangeFactory, TouchpointFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads(rep, other_rep, field_rep):
    return {
        "rep": LeadFactory(owner=rep),
        "other_rep": LeadFactory(owner=other_rep),
        "field_rep": LeadFactory(owner=field_rep),
        "unowned": LeadFactory(owner=None),
    }


def visible(user):
    return set(Lead.objects.visible_to(user).values_list("pk", flat=True))


def test_rep_sees_only_own_leads(rep, leads):
    assert visible(rep) == {leads["rep"].pk}


def test_manager_sees_own_team_but_not_other_team(manager, leads):
    assert visible(manager) == {leads["rep"].pk, leads["other_rep"].pk}


def test_manager_without_team_sees_only_own_leads(db, leads):
    lonely = UserFactory(role="sales manager", team=None)
    own = LeadFactory(owner=lonely)
    assert visible(lonely) == {own.pk}


def test_marketing_and_admin_see_every_lead(marketer, admin_user, leads):
    everything = {lead.pk for lead in leads.values()}
    assert visible(marketer) == everything
    assert visible(admin_user) == everything


def test_user_without_role_and_inactive_user_see_nothing(db, leads):
    nobody = UserFactory()
    inactive = UserFactory(role="marketing", is_active=False)
    assert visible(nobody) == set()
    assert visible(inactive) == set()


def test_strongest_role_wins_for_users_in_several_groups(db, leads, inside_team):
    from django.contrib.auth.models import Group

    user = UserFactory(role="sales rep", team=inside_team)
    user.groups.add(Group.objects.get(name="marketing"))
    user = type(user).objects.get(pk=user.pk)
    assert len(visible(user)) == len(leads)


def test_rep_cannot_open_another_reps_lead(client_for, rep, leads):
    client = client_for(rep)
    assert client.get(reverse("leads:detail", args=[leads["other_rep"].pk])).status_code == 404
    assert client.get(reverse("leads:detail", args=[leads["field_rep"].pk])).status_code == 404
    assert client.get(reverse("leads:detail", args=[leads["unowned"].pk])).status_code == 404
    assert client.get(reverse("leads:detail", args=[leads["rep"].pk])).status_code == 200


def test_rep_cannot_read_another_reps_timeline_fragment(client_for, rep, leads):
    url = (
        reverse("leads:detail", args=[leads["other_rep"].pk]) + "?before=2030-01-01T00:00:00%2B00:00~stage~1"
    )
    assert client_for(rep).get(url, HTTP_HX_REQUEST="true").status_code == 404


def test_manager_opens_team_lead_but_not_other_team_lead(client_for, manager, leads):
    client = client_for(manager)
    assert client.get(reverse("leads:detail", args=[leads["other_rep"].pk])).status_code == 200
    assert client.get(reverse("leads:detail", args=[leads["field_rep"].pk])).status_code == 404


def test_missing_lead_is_404_like_a_forbidden_one(client_for, marketer):
    assert client_for(marketer).get(reverse("leads:detail", args=[999999])).status_code == 404


def test_anonymous_visitor_is_sent_to_login(client, leads):
    response = client.get(reverse("leads:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    response = client.get(reverse("leads:detail", args=[leads["rep"].pk]))
    assert response.status_code == 302


def test_signed_in_user_without_role_is_refused(client_for, db):
    assert client_for(UserFactory()).get(reverse("leads:list")).status_code == 403


def test_lead_list_shows_only_visible_leads(client_for, rep, leads):
    response = client_for(rep).get(reverse("leads:list"))
    assert list(response.context["page"].items) == [leads["rep"]]
    assert leads["other_rep"].email not in response.text


def test_related_records_follow_lead_visibility(rep, marketer, leads):
    mine = TouchpointFactory(lead=leads["rep"])
    TouchpointFactory(lead=leads["other_rep"])
    anonymous = TouchpointFactory(lead=None)
    assert set(Touchpoint.objects.visible_to(rep)) == {mine}
    assert anonymous in Touchpoint.objects.visible_to(marketer)
    activity = SalesActivityFactory(lead=leads["rep"])
    SalesActivityFactory(lead=leads["field_rep"])
    assert list(SalesActivity.objects.visible_to(rep)) == [activity]
    change = StageChangeFactory(lead=leads["rep"])
    StageChangeFactory(lead=leads["field_rep"])
    assert list(StageChange.objects.visible_to(rep)) == [change]


def test_admin_lists_are_scoped_to_the_user(client, manager, leads):
    manager.is_staff = True
    manager.save()
    from django.contrib.auth.models import Permission

    manager.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(manager)
    response = client.get(reverse("admin:leads_lead_changelist"))
    assert response.status_code == 200
    assert leads["rep"].email in response.text
    assert leads["field_rep"].email not in response.text
    change_url = reverse("admin:leads_lead_change", args=[leads["field_rep"].pk])
    assert client.get(change_url).status_code in (302, 404)


def test_logout_needs_post(client_for, rep):
    client = client_for(rep)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("leads:list")).status_code == 302


def test_admin_lead_picker_is_scoped(client, rep, leads):
    from django.contrib.auth.models import Permission

    rep.is_staff = True
    rep.save()
    rep.user_permissions.add(*Permission.objects.filter(codename__in=["add_salesactivity", "view_lead"]))
    client.force_login(rep)
    foreign = leads["field_rep"]
    response = client.get(reverse("admin:leads_salesactivity_add"), {"lead": foreign.pk})
    assert response.status_code == 200
    assert foreign.email not in response.text
    response = client.post(
        reverse("admin:leads_salesactivity_add"),
        {
            "lead": foreign.pk,
            "kind": "call",
            "outcome": "reached",
            "occurred_at_0": "2026-01-01",
            "occurred_at_1": "10:00",
        },
    )
    assert response.status_code == 200  # the form is refused, nothing is attached to the foreign lead
    assert not SalesActivity.objects.filter(lead=foreign).exists()
    autocomplete = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "leads", "model_name": "salesactivity", "field_name": "lead", "term": ""},
    )
    assert foreign.email not in autocomplete.text


def test_marketing_reads_but_cannot_change_sales_fields_in_admin(client, marketer, rep, leads):
    client.force_login(marketer)
    lead = leads["rep"]
    url = reverse("admin:leads_lead_change", args=[lead.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="owner"' not in page.text
    assert 'name="deal_value"' not in page.text
