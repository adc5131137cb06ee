"""Evidence-based scoring through HTTP: the workbench edits imported-attribute criteria, the evidence page learns
from the outcomes and turns the suggestion into a draft, the validity report shows a version's figures over time;
who may see and do what, hostile names and values escaped, bad options answered with errors, query budgets."""

import math
import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.capture.models import ImportJob
from leadcockpit.core.bulk import insert
from leadcockpit.leads.models import Lead, Touchpoint
from leadcockpit.scoring import actions, evidence_views, learning, validity
from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.models import Criterion, LearningRun, ScoringVersion, ValidityReport

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_HEADER = '<img src=x onerror="alert(2)">'
HOSTILE_NAME = "img_srcx_onerroralert2"  # what the importer makes of that header
COLUMNS = {
    "Segment": ("text", "marketing"),
    HOSTILE_HEADER: ("text", "marketing"),
    "Rep rating": ("text", "sales"),
    "Status note": ("text", "marketing"),  # a planted leak: written once the deal is decided
}


def declare(columns=COLUMNS):
    """An import job that kept these columns as attributes, as the importer records them."""
    mapping = {
        "columns": [
            {"target": "external_id"},
            *({"target": "attribute", "type": t, "provenance": p} for t, p in columns.values()),
        ]
    }
    ImportJob.objects.create(
        kind="leads", filename="x.csv", content=b"", encoding="utf-8", delimiter=",",
        header=["Id", *columns], mapping=mapping, status="done",
    )  # fmt: skip


def plant(n=900, seed=5):
    """n closed leads whose chance to be won follows segment, a hostile attribute's value and demo requests."""
    declare()
    rng = random.Random(seed)
    now = timezone.now()
    leads, demos = [], []
    for i in range(n):
        segment = rng.choices(["A", "B", "C"], weights=[50, 25, 25])[0]
        hostile = rng.random() < 0.4
        demo = rng.random() < 0.3
        eta = -0.4 + {"A": 0.0, "B": 1.2, "C": -1.2}[segment] + 0.9 * hostile + 0.7 * demo
        won = rng.random() < 1 / (1 + math.exp(-eta))
        created = now - timedelta(days=300 - i % 200)
        leads.append(
            Lead(
                external_id=f"planted-{i}",
                stage_id="won" if won else "lost",
                created_at=created,
                closed_at=created + timedelta(days=30),
                attributes={
                    "segment": segment,
                    HOSTILE_NAME: XSS if hostile else "plain",
                    "rep_rating": "hot" if won == (rng.random() < 0.8) else "cold",
                    "status_note": "deal signed" if won else "no budget",
                },
            )
        )
        demos.append(demo)
    insert(leads)
    insert(
        Touchpoint(
            lead=lead,
            kind="demo_request",
            occurred_at=lead.created_at + timedelta(days=3),
            received_at=lead.created_at + timedelta(days=3),
        )
        for lead, demo in zip(leads, demos, strict=True)
        if demo
    )


@pytest.fixture
def active(marketer, manager):
    return create_default_model(marketing_user=marketer, sales_user=manager)


@pytest.fixture
def model(active):
    return active.model


@pytest.fixture
def learned(model, marketer, tasks_in_process, django_capture_on_commit_callbacks):
    """A finished learning run on planted outcomes."""
    plant()
    with django_capture_on_commit_callbacks(execute=True):
        run = learning.start_learning(model=model, by=marketer)
    run.refresh_from_db()
    assert run.status == "done", run.error
    return run


def evidence_url(model, run=None):
    url = reverse("scoring:evidence", args=[model.pk])
    return f"{url}?run={run.pk}" if run else url


def options(**changes):
    data = {"holdout": "30", "l2": "1", "mql_probability": "50"}
    data.update(changes)
    return data


# --- the workbench edits criteria on imported attributes ------------------------------------------------------------


def test_the_workbench_offers_imported_attributes_by_name_and_saves_a_criterion_on_one(
    client_for, active, marketer
):
    declare()
    draft = actions.new_draft(model=active.model, by=marketer)
    client = client_for(marketer)
    page = client.get(reverse("scoring:version", args=[draft.pk])).text
    assert '<option value="attribute:segment">Segment</option>' in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page  # the header as its label, escaped
    assert HOSTILE_HEADER not in page
    assert 'value="attribute:rep_rating"' not in page  # entered by sales: no criterion may read it

    response = client.post(
        reverse("scoring:add_criterion", args=[draft.pk, "fit"]),
        {
            "new-fit-label": "Segment B",
            "new-fit-field": "attribute:segment",
            "new-fit-operator": "equals",
            "new-fit-value": "B",
            "new-fit-points": "15",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    criterion = draft.criteria.get(label="Segment B")
    assert (criterion.field, criterion.value, criterion.points) == ("attribute:segment", "B", 15)
    page = client.get(reverse("scoring:version", args=[draft.pk])).text
    assert f'name="c{criterion.pk}-field"' in page
    assert '<option value="attribute:segment" selected>Segment</option>' in page

    # Edits keep the attribute; the diff names it as people read it.
    prefix = f"c{criterion.pk}"
    data = {
        f"{prefix}-label": "Segment B",
        f"{prefix}-field": "attribute:segment",
        f"{prefix}-operator": "equals",
        f"{prefix}-value": "C",
        f"{prefix}-points": "-5",
    }
    assert client.post(reverse("scoring:criterion", args=[criterion.pk]), data).status_code == 302
    criterion.refresh_from_db()
    assert (criterion.value, criterion.points) == ("C", -5)
    diff = client.get(reverse("scoring:diff"), {"a": active.pk, "b": draft.pk}).text
    assert "Segment equals C" in diff
    assert "attribute:segment" not in diff


@pytest.mark.parametrize("field", ["attribute:nope", "attribute:rep_rating", "lead.id", "attribute:x;drop"])
def test_a_field_outside_the_allowlist_stays_a_form_error(client_for, active, marketer, field):
    declare()
    draft = actions.new_draft(model=active.model, by=marketer)
    before = draft.criteria.count()
    response = client_for(marketer).post(
        reverse("scoring:add_criterion", args=[draft.pk, "fit"]),
        {
            "new-fit-label": "Sneaky",
            "new-fit-field": field,
            "new-fit-operator": "equals",
            "new-fit-value": "x",
            "new-fit-points": "5",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "Select a valid choice" in response.text
    assert draft.criteria.count() == before


def test_a_stored_criterion_on_a_field_no_import_declares_any_more_is_shown_and_refused_on_save(
    client_for, active, marketer
):
    draft = actions.new_draft(model=active.model, by=marketer)
    criterion = draft.criteria.create(
        kind="fit", label="Gone", field="attribute:gone", operator="equals", value="x", points=3
    )
    client = client_for(marketer)
    page = client.get(reverse("scoring:version", args=[draft.pk])).text
    assert '<option value="attribute:gone" selected>gone</option>' in page
    prefix = f"c{criterion.pk}"
    data = {
        f"{prefix}-label": "Gone",
        f"{prefix}-field": "attribute:gone",
        f"{prefix}-operator": "equals",
        f"{prefix}-value": "y",
        f"{prefix}-points": "3",
    }
    response = client.post(reverse("scoring:criterion", args=[criterion.pk]), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert "Unknown field." in response.text
    criterion.refresh_from_db()
    assert criterion.value == "x"


# --- who may see and do what ----------------------------------------------------------------------------------------


def urls(model, version, run):
    return {
        "evidence": ("get", reverse("scoring:evidence", args=[model.pk])),
        "learn": ("post", reverse("scoring:learn", args=[model.pk])),
        "draft": ("post", reverse("scoring:draft_from_run", args=[run.pk])),
        "validity": ("get", reverse("scoring:validity", args=[version.pk])),
        "compute": ("post", reverse("scoring:compute_validity", args=[version.pk])),
    }


@pytest.fixture
def finished_run(model):
    """A finished run with a tiny suggestion (no worker needed)."""
    suggestion = {"criteria": [{"kind": "fit", "field": "phone", "operator": "is_set", "points": 7}]}
    return LearningRun.objects.create(
        model=model,
        status="done",
        percent=100,
        step="done",
        result={"n": 0, "features": [], "excluded": [], "suggestion": suggestion, "holdout": {}},
    )


def test_reps_are_refused_every_evidence_page_and_action(client_for, model, active, finished_run, rep):
    client = client_for(rep)
    for name, (method, url) in urls(model, active, finished_run).items():
        response = getattr(client, method)(url, options())
        assert response.status_code == 403, name
    assert client.get(evidence_url(model), HTTP_HX_REQUEST="true").status_code == 403
    assert LearningRun.objects.count() == 1
    assert not ScoringVersion.objects.filter(status="draft").exists()
    assert not ValidityReport.objects.exists()


def test_sales_managers_read_the_evidence_but_neither_learn_nor_make_drafts_nor_compute(
    client_for, model, active, finished_run, manager
):
    client = client_for(manager)
    addresses = urls(model, active, finished_run)
    for name in ("evidence", "validity"):
        response = client.get(addresses[name][1])
        assert response.status_code == 200, name
    page = client.get(addresses["evidence"][1]).text
    assert 'action="' + addresses["learn"][1] not in page
    assert "Create draft from this suggestion" not in page
    assert "Compute now" not in client.get(addresses["validity"][1]).text
    for name in ("learn", "draft", "compute"):
        assert client.post(addresses[name][1], options()).status_code == 403, name
    assert LearningRun.objects.count() == 1
    assert not ScoringVersion.objects.filter(status="draft").exists()
    assert not ValidityReport.objects.exists()


def test_a_marketer_starts_a_run_and_makes_a_draft_from_a_finished_one(
    client_for, model, finished_run, marketer
):
    client = client_for(marketer)
    page = client.get(evidence_url(model, finished_run)).text
    assert "Create draft from this suggestion" in page
    response = client.post(reverse("scoring:learn", args=[model.pk]), options(holdout="25"))
    run = LearningRun.objects.exclude(pk=finished_run.pk).get()
    assert response.status_code == 302
    assert response["Location"] == evidence_url(model, run) + "#learning-run"
    assert run.options == {"holdout": 0.25, "l2": 1.0, "mql_probability": 0.5, "exclude": [], "include": []}
    assert run.created_by == marketer
    response = client.post(reverse("scoring:draft_from_run", args=[finished_run.pk]))
    draft = ScoringVersion.objects.get(status="draft")
    assert response["Location"] == reverse("scoring:version", args=[draft.pk])
    assert list(draft.criteria.filter(kind="fit").values_list("field", "points")) == [("phone", 7)]


def test_unknown_or_foreign_ids_are_404(client_for, model, active, finished_run, marketer):
    other = create_default_model(name="Other").model
    client = client_for(marketer)
    assert client.get(evidence_url(other, finished_run)).status_code == 404
    assert client.get(evidence_url(model) + "?run=abc").status_code == 404
    assert client.get(reverse("scoring:evidence", args=[99999])).status_code == 404
    assert client.post(reverse("scoring:draft_from_run", args=[99999])).status_code == 404
    assert client.get(reverse("scoring:validity", args=[active.pk]) + "?report=x").status_code == 404
    assert client.get(reverse("scoring:validity", args=[active.pk]) + "?report=99999").status_code == 404


# --- options: bad input is answered with errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"holdout": "abc"}, "holdout"),
        ({"holdout": "99"}, "holdout"),
        ({"holdout": ""}, "holdout"),
        ({"l2": "nan"}, "l2"),
        ({"l2": "inf"}, "l2"),
        ({"l2": "-1"}, "l2"),
        ({"l2": "1e400"}, "l2"),
        ({"mql_probability": "0"}, "mql_probability"),
        ({"exclude": ["attribute:nope"]}, "exclude"),
        ({"exclude": ["budget"]}, "exclude"),  # entered by sales: locked out already, not a choice
        ({"include": ["attribute:rep_rating"]}, "include"),  # provenance: never included
        ({"include": ["attribute:status_note"]}, "include"),  # no run found it suspicious yet
    ],
)
def test_bad_options_come_back_with_their_message_and_start_nothing(
    client_for, model, marketer, changes, field
):
    declare()
    response = client_for(marketer).post(reverse("scoring:learn", args=[model.pk]), options(**changes))
    assert response.status_code == 422
    form = response.context["options_form"]
    assert field in form.errors
    assert 'class="field-error"' in response.text
    assert not LearningRun.objects.exists()


# --- the whole flow on planted outcomes ------------------------------------------------------------------------------


def test_learning_explains_excludes_suggests_and_makes_a_draft_that_opens_in_the_workbench(
    client_for, model, active, learned, marketer, tasks_in_process, django_capture_on_commit_callbacks
):
    client = client_for(marketer)
    page = client.get(evidence_url(model)).text
    # The explanation, in words, with intervals, rates and support; significant effects marked.
    assert "Segment is B" in page
    assert "multiplies the odds of converting" in page
    assert 'class="sig"' in page
    # The hostile attribute's header and value are shown, escaped.
    assert XSS not in page
    assert HOSTILE_HEADER not in page
    assert ESCAPED in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    # The leakage guard's findings and the sales-entered fields, with their reasons.
    excluded = {item["key"]: item for item in learned.result["excluded"]}
    assert excluded["attribute:rep_rating"]["code"] == "sales"
    assert excluded["attribute:status_note"]["code"] in ("separation", "single_auc")
    assert "Entered by sales after contact" in page
    assert "it looks filled in once the outcome was known" in page or "it knows the outcome" in page
    # A statistical finding can be used anyway in the next run; a provenance cannot.
    assert 'name="include" value="attribute:status_note"' in page
    assert 'name="include" value="attribute:rep_rating"' not in page
    # Held-out figures and the suggestion.
    assert "Lift per decile" in page
    assert '<svg class="chart"' in page
    assert "Suggested points" in page

    # Another run that uses the leak anyway and leaves Segment out by choice.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("scoring:learn", args=[model.pk]),
            options(include=["attribute:status_note"], exclude=["attribute:segment"]),
        )
    assert response.status_code == 302
    second = LearningRun.objects.get(pk=int(response["Location"].split("run=")[1].split("#")[0]))
    assert second.status == "done"
    assert second.options["include"] == ["attribute:status_note"]
    used = {f["group"] for f in second.result["features"]}
    assert "attribute:status_note" in used
    assert "attribute:segment" not in used
    page = client.get(response["Location"]).text
    assert "used anyway" in page
    assert "by choice" in page

    # The first run's suggestion becomes a draft, opened in the workbench.
    response = client.post(reverse("scoring:draft_from_run", args=[learned.pk]), {"knockouts": "on"})
    draft = ScoringVersion.objects.get(status="draft")
    assert response.status_code == 302
    assert response["Location"] == reverse("scoring:version", args=[draft.pk])
    learned.refresh_from_db()
    assert learned.draft == draft
    suggested = learned.result["suggestion"]["criteria"]
    assert draft.criteria.filter(kind__in=["fit", "interest"]).count() == len(suggested)
    segment = draft.criteria.filter(field="attribute:segment").first()
    assert segment is not None
    workbench = client.get(response["Location"]).text
    assert '<option value="attribute:segment" selected>Segment</option>' in workbench
    assert XSS not in workbench
    assert (
        f'href="{reverse("scoring:validity", args=[draft.pk])}"'
        in client.get(evidence_url(model, learned)).text
    )

    # A second draft is refused with a message, never a 500.
    response = client.post(reverse("scoring:draft_from_run", args=[second.pk]), follow=True)
    assert response.status_code == 200
    assert "has a draft already" in response.text
    assert ScoringVersion.objects.filter(status="draft").count() == 1


def test_a_draft_without_the_knockouts_when_unticked(client_for, model, marketer):
    suggestion = {
        "criteria": [{"kind": "fit", "field": "phone", "operator": "is_set", "points": 7}],
        "knockouts": [
            {"kind": "knockout", "field": "contact_role", "operator": "equals", "value": "student",
             "reason": "student"},
        ],
    }  # fmt: skip
    run = LearningRun.objects.create(
        model=model, status="done", result={"features": [], "suggestion": suggestion, "holdout": {}}
    )
    source_knockouts = set(
        model.versions.get().criteria.filter(kind="knockout").values_list("label", flat=True)
    )
    client_for(marketer).post(reverse("scoring:draft_from_run", args=[run.pk]), {})
    draft = ScoringVersion.objects.get(status="draft")
    assert set(draft.criteria.filter(kind="knockout").values_list("label", flat=True)) == source_knockouts


def test_a_run_in_progress_is_polled_with_a_refresh_link_and_stops_when_done(client_for, model, marketer):
    client = client_for(marketer)
    client.post(reverse("scoring:learn", args=[model.pk]), options())  # on-commit work is not run here
    run = LearningRun.objects.get()
    LearningRun.objects.filter(pk=run.pk).update(status="running", step="fitting", percent=45)
    fragment = client.get(evidence_url(model, run), HTTP_HX_REQUEST="true").text
    assert fragment.lstrip().startswith('<section id="learning-run"')
    assert 'hx-trigger="every 1s"' in fragment
    assert 'value="45"' in fragment
    assert "Fitting the model" in fragment
    assert f'href="{evidence_url(model, run)}#learning-run"' in fragment  # without JavaScript: a link
    LearningRun.objects.filter(pk=run.pk).update(status="failed", error=XSS, step="done")
    fragment = client.get(evidence_url(model, run), HTTP_HX_REQUEST="true").text
    assert "hx-trigger" not in fragment
    assert ESCAPED in fragment
    assert XSS not in fragment


def test_a_second_run_waits_for_the_first_of_the_model(client_for, model, marketer):
    client = client_for(marketer)
    client.post(reverse("scoring:learn", args=[model.pk]), options())  # on-commit work is not run here
    first = LearningRun.objects.get()
    response = client.post(reverse("scoring:learn", args=[model.pk]), options(), follow=True)
    assert f"Learning run #{first.pk} is still running" in response.text
    assert LearningRun.objects.count() == 1
    LearningRun.objects.filter(pk=first.pk).update(created_at=timezone.now() - learning.STALE_AFTER * 2)
    client.post(reverse("scoring:learn", args=[model.pk]), options())  # a stale one does not block
    assert LearningRun.objects.count() == 2


def test_a_queued_run_nobody_takes_up_says_so(client_for, model, marketer):
    run = LearningRun.objects.create(model=model, created_by=marketer)
    LearningRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    page = client_for(marketer).get(evidence_url(model)).text
    assert "No background worker has taken up this run yet" in page


def test_the_evidence_pages_stay_within_their_query_budget(
    client_for, model, learned, marketer, manager, django_assert_max_num_queries
):
    for _ in range(3):
        LearningRun.objects.create(model=model, created_by=marketer, options={"holdout": 0.2})
    # Session, user, role; model, the chosen run, the attributes, the open draft; the runs, the last findings; the
    # review reminder. The fragment: the first six and the open draft.
    for user in (marketer, manager):
        client = client_for(user)
        with django_assert_max_num_queries(10):
            assert client.get(evidence_url(model, learned)).status_code == 200
        with django_assert_max_num_queries(7):
            assert client.get(evidence_url(model, learned), HTTP_HX_REQUEST="true").status_code == 200


# --- the validity report ---------------------------------------------------------------------------------------------


def test_compute_now_writes_a_report_shown_with_its_figures_charts_and_history(
    client_for, model, active, marketer, manager, tasks_in_process
):
    plant(n=400)
    client = client_for(marketer)
    url = reverse("scoring:validity", args=[active.pk])
    assert "No validity report for this version yet" in client.get(url).text
    response = client.post(reverse("scoring:compute_validity", args=[active.pk]), follow=True)
    assert response.status_code == 200
    report = ValidityReport.objects.get(version=active)
    assert report.n == 400
    page = response.text
    assert f'<strong id="validity-auc">{report.auc:.2f}</strong>' in page
    assert "Lift per decile" in page
    assert page.count('<svg class="chart"') == 2
    assert "Per traffic light" in page
    # A second report: the history becomes a line.
    client.post(reverse("scoring:compute_validity", args=[active.pk]))
    page = client_for(manager).get(url).text
    assert page.count('<svg class="chart"') == 3
    assert "ROC AUC over time" in page
    latest = ValidityReport.objects.order_by("-computed_at", "-pk").first()
    assert (
        'id="validity-flag"' in page
    ) is latest.flagged  # the default model knows none of the planted fields


def test_a_flagged_report_shows_the_drop_escaped_and_a_draft_shows_the_active_versions_beside_it(
    client_for, model, active, marketer, manager
):
    at = timezone.now()
    figures = {
        "n": 100, "positives": 40, "rate": 0.4, "auc": 0.55, "auc_low": 0.44, "auc_high": 0.66,
        "trusted": True, "top_decile_lift": 1.1, "deciles": [], "calibration": [], "bands": {},
    }  # fmt: skip
    ValidityReport.objects.create(
        version=active, computed_at=at - timedelta(days=30), n=100, positives=40, auc=0.8, auc_low=0.7,
        auc_high=0.9, result={"all": {**figures, "auc": 0.8}},
    )  # fmt: skip
    ValidityReport.objects.create(
        version=active, computed_at=at, n=100, positives=40, auc=0.55, auc_low=0.44, auc_high=0.66,
        result={"all": figures, "recent": None}, flagged=True, flag_reason=f"ROC AUC fell {XSS}",
    )  # fmt: skip
    page = client_for(manager).get(reverse("scoring:validity", args=[active.pk])).text
    assert 'id="validity-flag"' in page
    assert f"ROC AUC fell {ESCAPED}" in page
    assert XSS not in page
    assert page.count("badge--failed") == 1  # the flagged point in the history table
    draft = actions.new_draft(model=model, by=marketer)
    page = client_for(manager).get(reverse("scoring:validity", args=[draft.pk])).text
    assert f"Active version v{active.number}" in page
    assert 'id="validity-flag"' not in page


def test_computing_a_drafts_report_computes_the_active_versions_too_when_it_has_none(
    client_for, model, active, marketer, tasks_in_process
):
    plant(n=200)
    draft = actions.new_draft(model=model, by=marketer)
    client = client_for(marketer)
    page = client.post(reverse("scoring:compute_validity", args=[draft.pk]), follow=True).text
    assert ValidityReport.objects.filter(version=draft).count() == 1
    active_report = ValidityReport.objects.get(version=active)
    assert f"Active version v{active.number}" in page
    assert f'href="{reverse("scoring:validity", args=[active.pk])}"' in page
    client.post(reverse("scoring:compute_validity", args=[draft.pk]))
    assert ValidityReport.objects.filter(version=draft).count() == 2
    assert list(ValidityReport.objects.filter(version=active)) == [active_report]  # it has one: left alone


def test_a_report_that_could_not_be_computed_answers_with_a_message(
    client_for, active, marketer, tasks_in_process, monkeypatch
):
    def broken(version, **kwargs):
        raise RuntimeError("database away")

    monkeypatch.setattr(validity, "compute_report", broken)
    response = client_for(marketer).post(reverse("scoring:compute_validity", args=[active.pk]), follow=True)
    assert response.status_code == 200
    assert "could not be computed now" in response.text


def test_the_validity_page_stays_within_its_query_budget(
    client_for, model, active, marketer, django_assert_max_num_queries
):
    plant(n=300)
    for _ in range(4):
        validity.compute_report(active)
    draft = actions.new_draft(model=model, by=marketer)
    validity.compute_report(draft)
    client = client_for(marketer)
    # Session, user, role; version, the report, the history; the review reminder; for a draft the active version
    # and its latest report.
    with django_assert_max_num_queries(7):
        assert client.get(reverse("scoring:validity", args=[active.pk])).status_code == 200
    with django_assert_max_num_queries(9):
        assert client.get(reverse("scoring:validity", args=[draft.pk])).status_code == 200


def test_every_version_links_its_validity_report_from_the_evidence_run_and_criteria_keep_labels(
    client_for, model, finished_run, marketer
):
    client = client_for(marketer)
    client.post(reverse("scoring:draft_from_run", args=[finished_run.pk]))
    draft = ScoringVersion.objects.get(status="draft")
    assert Criterion.objects.filter(version=draft, label="Phone is set").exists()
    page = client.get(evidence_url(model, finished_run)).text
    assert reverse("scoring:validity", args=[draft.pk]) in page
    assert reverse("scoring:version", args=[draft.pk]) in page


def test_the_overview_and_the_workbench_link_the_evidence_and_validity_for_those_who_may_read_them(
    client_for, model, active, marketer, manager, rep
):
    evidence = f'href="{reverse("scoring:evidence", args=[model.pk])}"'
    report = f'href="{reverse("scoring:validity", args=[active.pk])}"'
    for user, shown in ((marketer, True), (manager, True), (rep, False)):
        client = client_for(user)
        overview = client.get(reverse("scoring:overview")).text
        workbench = client.get(reverse("scoring:version", args=[active.pk])).text
        assert (evidence in overview, report in overview) == (shown, shown), user
        assert (evidence in workbench, report in workbench) == (shown, shown), user


def test_the_reasons_for_leaving_fields_out_are_said_in_the_readers_language(
    client_for, model, learned, marketer
):
    from django.utils import translation

    stored = {item["key"]: item for item in learned.result["excluded"]}
    for item in stored.values():  # as a worker running in English stored them
        item["reason"] = "stored in the worker's language"
    LearningRun.objects.filter(pk=learned.pk).update(result=learned.result)
    client = client_for(marketer)
    page = client.get(evidence_url(model, learned), HTTP_ACCEPT_LANGUAGE="de").text
    with translation.override("de"):
        sales = str(learning.PROVENANCE_REASONS["sales"])
        leak = evidence_views.exclusion_reason(stored["attribute:status_note"])
    assert sales in page
    assert leak in page
    assert "Entered by sales after contact" not in page
    assert "stored in the worker's language" not in page
