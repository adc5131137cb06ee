"""Managers set up routing in the browser: team strategy and clock, reps' capacity and absence, rules."""

import pytest
from django.urls import reverse

from leadcockpit.handover.models import RepAvailability, RoutingRule, TeamRouting

pytestmark = pytest.mark.django_db


def test_a_manager_sets_the_teams_clock_and_a_reps_absence(client_for, manager, rep, inside_team):
    client = client_for(manager)
    assert client.get(reverse("handover:routing")).status_code == 200
    response = client.post(
        reverse("handover:team_settings", args=[inside_team.pk]),
        {"strategy": "least_loaded", "sla_hours": 8, "business_hours": "on", "remind_before_hours": 2},
    )
    assert response.status_code == 302
    routing = TeamRouting.objects.get(team=inside_team)
    assert (routing.strategy, routing.sla_hours, routing.business_hours) == ("least_loaded", 8, True)
    response = client.post(
        reverse("handover:rep_availability", args=[rep.pk]),
        {"capacity": 20, "absent_from": "2026-12-21", "absent_until": "2027-01-02"},
    )
    assert response.status_code == 302
    assert RepAvailability.objects.get(rep=rep).capacity == 20


@pytest.mark.parametrize(
    "data",
    [
        {"strategy": "random", "sla_hours": 8, "remind_before_hours": 2},
        {"strategy": "round_robin", "sla_hours": 0, "remind_before_hours": 2},
        {"strategy": "round_robin", "sla_hours": "<script>", "remind_before_hours": 2},
    ],
)
def test_bad_team_settings_get_a_message(client_for, manager, inside_team, data):
    response = client_for(manager).post(reverse("handover:team_settings", args=[inside_team.pk]), data)
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert not TeamRouting.objects.exists()


def test_an_absence_that_ends_before_it_starts_is_refused(client_for, manager, rep):
    response = client_for(manager).post(
        reverse("handover:rep_availability", args=[rep.pk]),
        {"capacity": 20, "absent_from": "2027-01-02", "absent_until": "2026-12-21"},
    )
    assert response.status_code == 422
    assert not RepAvailability.objects.exists()


def test_a_manager_sets_up_only_their_own_team(client_for, manager, field_team, field_rep, rep, marketer):
    client = client_for(manager)
    assert client.post(reverse("handover:team_settings", args=[field_team.pk]), {}).status_code == 404
    assert (
        client.post(reverse("handover:rep_availability", args=[field_rep.pk]), {"capacity": 1}).status_code
        == 404
    )
    rule = RoutingRule.objects.create(name="Field", team=field_team)
    assert client.get(reverse("handover:rule_edit", args=[rule.pk])).status_code == 404
    # client_for logs the one test client in anew: the manager checks come first.
    assert client_for(rep).get(reverse("handover:routing")).status_code == 403
    assert client_for(marketer).get(reverse("handover:routing")).status_code == 403


def conditions(*rows):
    data = {"conditions-TOTAL_FORMS": str(len(rows)), "conditions-INITIAL_FORMS": "0"}
    for index, (field, operator, value) in enumerate(rows):
        data.update(
            {
                f"conditions-{index}-field": field,
                f"conditions-{index}-operator": operator,
                f"conditions-{index}-value": value,
            }
        )
    return data


def test_a_manager_writes_a_rule_in_words(client_for, manager, inside_team):
    response = client_for(manager).post(
        reverse("handover:rule_new"),
        {
            "name": "DACH mid-size",
            "position": 5,
            "team": inside_team.pk,
            "grades": ["A1", "A2"],
            "active": "on",
            **conditions(
                ("country", "in_list", "DE, AT,CH"), ("employee_count", "range", "50-5000"), ("", "", "")
            ),
        },
    )
    assert response.status_code == 302
    rule = RoutingRule.objects.get()
    assert rule.conditions == [
        {"field": "country", "operator": "in_list", "value": ["AT", "CH", "DE"]},
        {"field": "employee_count", "operator": "range", "value": {"min": 50.0, "max": 5000.0}},
    ]
    assert rule.grades == ["A1", "A2"]
    page = client_for(manager).get(reverse("handover:rule_edit", args=[rule.pk])).text
    assert 'value="50-5000"' in page


@pytest.mark.parametrize(
    "row",
    [
        ("_connector", "equals", "x"),
        ("country__in", "equals", "DE"),
        ("country", "range", "1-2"),
        ("employee_count", "range", "9-1"),
        ("industry", "equals", "'; DROP TABLE"),
        ("country", "in_list", ""),
    ],
)
def test_rules_with_fields_or_operators_the_allowlist_does_not_know_are_refused(
    client_for, manager, inside_team, row
):
    response = client_for(manager).post(
        reverse("handover:rule_new"),
        {"name": "Bad", "position": 1, "team": inside_team.pk, **conditions(row)},
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert not RoutingRule.objects.exists()
