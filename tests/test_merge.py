"""Identity: duplicate leads merge into one, keeping every row that hung on either, and the merge is recorded."""

import random
import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcockpit.capture.models import ApiKey
from leadcockpit.handover.models import Handover
from leadcockpit.leads.actions import (
    MergeRefused,
    find_duplicate_leads,
    leads_by_email,
    merge_into_oldest,
    merge_leads,
)
from leadcockpit.leads.models import (
    Lead,
    LeadMerge,
    SalesActivity,
    StageChange,
    Touchpoint,
    canonical_email,
    canonical_email_domains_q,
    canonical_email_sql,
)
from leadcockpit.scoring.actions import rescore_dirty
from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.evaluator import evaluate
from leadcockpit.scoring.models import DirtyLead, LeadSignals, ScoreChange, ScoringVersion
from leadcockpit.scoring.rescoring import rescore

from .factories import (
    CampaignFactory,
    CompanyFactory,
    LeadFactory,
    SalesActivityFactory,
    StageChangeFactory,
    TouchpointFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def handover(lead, rep, *, status="open", **extra):
    return Handover.objects.create(
        lead=lead, rep=rep, status=status, created_at=NOW, due_at=NOW + timedelta(hours=24), **extra
    )


def score_change(lead, version):
    return ScoreChange.objects.create(
        lead=lead,
        version=version,
        at=NOW,
        fit=10,
        interest=5,
        score=15,
        band="red",
        temperature="cold",
        grade="C4",
        is_mql=False,
    )


@pytest.fixture
def version(marketer, manager):
    create_default_model(marketing_user=marketer, sales_user=manager)
    return ScoringVersion.objects.get(status="active")


@pytest.fixture
def pair(rep, other_rep, version):
    """Two records of one person, each with history in every table that points at a lead."""
    keep = LeadFactory(
        email="anna@firma.example",
        external_id=None,
        first_name="Anna",
        last_name="",
        budget="approved",
        need="unknown",
        stage_id="sal",
        owner=rep,
        attributes={"size": "keep"},
        created_at=NOW - timedelta(days=10),
    )
    dup = LeadFactory(
        email="anna.schmidt@firma.example",
        external_id="crm-42",
        first_name="Anne",
        last_name="Schmidt",
        budget="none",
        need="acute",
        stage_id="mql",
        owner=other_rep,
        attributes={"size": "dup", "fair": "Hannover"},
        created_at=NOW - timedelta(days=3),
    )
    for lead in (keep, dup):
        TouchpointFactory.create_batch(3, lead=lead)
        SalesActivityFactory.create_batch(2, lead=lead, rep=rep)
        StageChangeFactory(lead=lead)
        score_change(lead, version)
    handover(keep, rep, status="accepted", decided_at=NOW)
    handover(dup, other_rep)  # the only open one: it may move over
    return keep, dup


def history(lead_ids):
    return {
        "touchpoints": Touchpoint.objects.filter(lead__in=lead_ids).count(),
        "activities": SalesActivity.objects.filter(lead__in=lead_ids).count(),
        "stage changes": StageChange.objects.filter(lead__in=lead_ids).count(),
        "score changes": ScoreChange.objects.filter(lead__in=lead_ids).count(),
        "handovers": Handover.objects.filter(lead__in=lead_ids).count(),
    }


def admin_merge(client, leads, reason="same person"):
    ids = [str(lead.pk) for lead in leads]
    return client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "merge_selected", helpers.ACTION_CHECKBOX_NAME: ids, "post": "yes", "reason": reason},
        follow=True,
    )


# --- the merge itself -------------------------------------------------------------------------------------


def test_every_touchpoint_activity_stage_change_score_change_and_handover_survives_on_the_kept_lead(
    client_for, admin_user, pair
):
    keep, dup = pair
    before = history([keep.pk, dup.pk])
    response = admin_merge(client_for(admin_user), [dup, keep])
    assert response.status_code == 200
    assert "1 lead was merged into Anna" in response.text
    assert not Lead.objects.filter(pk=dup.pk).exists()
    assert (
        history([keep.pk])
        == before
        == {
            "touchpoints": 6,
            "activities": 4,
            "stage changes": 2,
            "score changes": 2,
            "handovers": 2,
        }
    )
    assert Handover.objects.get(lead=keep, status="open").rep.username == "rep2"


def test_the_merge_is_recorded_with_who_why_and_the_duplicate_as_it_was(client_for, admin_user, pair):
    keep, dup = pair
    admin_merge(client_for(admin_user), [keep, dup], reason="  one person, two forms  ")
    merge = LeadMerge.objects.get()
    assert (merge.lead, merge.merged_lead_id, merge.actor, merge.system_actor) == (
        keep,
        dup.pk,
        admin_user,
        "",
    )
    assert (merge.email, merge.external_id, merge.reason) == (
        "anna.schmidt@firma.example",
        "crm-42",
        "one person, two forms",
    )
    assert merge.snapshot["stage_id"] == "mql"
    assert merge.snapshot["owner_id"] == dup.owner_id
    assert merge.snapshot["attributes"] == {"size": "dup", "fair": "Hannover"}
    assert merge.moved["leads.touchpoint"] == 3
    assert merge.moved["handover.handover"] == 1
    page = client_for(admin_user).get(reverse("admin:leads_leadmerge_changelist"))
    assert "anna.schmidt@firma.example" in page.text


def test_blank_fields_are_filled_from_the_duplicate_and_the_lifecycle_stays_the_kept_leads(
    admin_user, rep, pair
):
    keep, dup = pair
    merge_leads(keep=keep, duplicate=dup, by=admin_user, reason="test")
    keep.refresh_from_db()
    # Filled where the kept lead knew nothing; its own answers win.
    assert (keep.email, keep.external_id, keep.first_name, keep.last_name) == (
        "anna@firma.example",
        "crm-42",
        "Anna",
        "Schmidt",
    )
    assert (keep.budget, keep.need) == ("approved", "acute")
    assert keep.attributes == {"size": "keep", "fair": "Hannover"}
    # The kept lead's lifecycle as a whole: no stage moved outside the lifecycle table.
    assert (keep.stage_id, keep.owner) == ("sal", rep)
    assert keep.created_at == NOW - timedelta(days=10)


def test_the_older_duplicate_brings_its_creation_time_and_origin_and_later_consent_wins(admin_user):
    campaign = CampaignFactory()
    keep = LeadFactory(source="web_form", tracking_consent=True, consent_basis="consent", consent_at=NOW)
    dup = LeadFactory(
        source="trade_fair",
        first_channel_id="trade_fair",
        campaign=campaign,
        created_at=NOW - timedelta(days=400),
        tracking_consent=False,
        marketing_consent=False,
        consent_basis="consent",
        consent_at=NOW + timedelta(minutes=5),  # withdrew later: the latest statement counts
    )
    merge_leads(keep=keep, duplicate=dup, by=admin_user, reason="test")
    keep.refresh_from_db()
    assert keep.created_at == NOW - timedelta(days=400)
    assert (keep.source, keep.first_channel_id, keep.campaign) == ("trade_fair", "trade_fair", campaign)
    assert (keep.tracking_consent, keep.consent_at) == (False, NOW + timedelta(minutes=5))


def test_two_open_handovers_refuse_the_merge_with_a_clear_message_and_change_nothing(
    client_for, admin_user, rep, other_rep
):
    keep, dup = LeadFactory(stage_id="handed_over"), LeadFactory(stage_id="handed_over")
    handover(keep, rep)
    handover(dup, other_rep)
    TouchpointFactory(lead=dup)
    response = admin_merge(client_for(admin_user), [keep, dup])
    assert "Nothing was merged: Both leads have a handover, and a lead may have only one" in response.text
    assert Lead.objects.filter(pk__in=[keep.pk, dup.pk]).count() == 2
    assert Touchpoint.objects.get().lead == dup
    assert not LeadMerge.objects.exists()
    with pytest.raises(MergeRefused, match="settle one of them first"):
        merge_leads(keep=keep, duplicate=dup, system="test")
    # Once a rep settles one of them, the merge goes through and both handovers are kept.
    Handover.objects.filter(lead=dup).update(status="rejected", reject_reason="duplicate", decided_at=NOW)
    merge_leads(keep=keep, duplicate=dup, system="test")
    assert Handover.objects.filter(lead=keep).count() == 2


def test_merging_again_changes_nothing_and_a_merged_lead_is_followed_to_where_it_went(admin_user):
    a, b, c = LeadFactory(), LeadFactory(), LeadFactory()
    first = merge_leads(keep=a, duplicate=b, by=admin_user, reason="test")
    assert merge_leads(keep=a, duplicate=b, by=admin_user, reason="test") == first
    assert merge_leads(keep=a.pk, duplicate=b.pk, system="test") == first
    # b went into a: merging c into b means merging c into a.
    TouchpointFactory(lead=c)
    merge_leads(keep=b.pk, duplicate=c, by=admin_user, reason="test")
    assert Touchpoint.objects.get().lead_id == a.pk
    assert LeadMerge.objects.filter(lead=a).count() == 2
    with pytest.raises(MergeRefused, match="itself"):
        merge_leads(keep=a, duplicate=a, by=admin_user)
    with pytest.raises(MergeRefused, match="no longer exists"):
        merge_leads(keep=a, duplicate=999_999, by=admin_user)


def test_a_merge_of_a_lead_that_absorbed_others_carries_their_records_along(admin_user):
    a, b, c = LeadFactory(), LeadFactory(), LeadFactory(external_id="old-crm-id")
    merge_leads(keep=b, duplicate=c, by=admin_user, reason="test")
    merge_leads(keep=a, duplicate=b, by=admin_user, reason="test")
    assert set(LeadMerge.objects.values_list("lead_id", flat=True)) == {a.pk}
    assert leads_by_email([c.email]) == {c.email: a.pk}


def test_the_kept_lead_is_rescored_from_both_histories(admin_user, version):
    keep = LeadFactory(contact_role="decision_maker", company=CompanyFactory(employee_count=300))
    dup = LeadFactory()
    TouchpointFactory(lead=keep, kind="page_view", occurred_at=NOW - timedelta(days=1))
    TouchpointFactory.create_batch(2, lead=dup, kind="demo_request", occurred_at=NOW - timedelta(days=1))
    rescore(lead_ids=[keep.pk, dup.pk], as_of=NOW, recompute=True, advance_stages=False)
    assert LeadSignals.objects.filter(lead__in=[keep, dup]).count() == 2
    DirtyLead.objects.all().delete()

    merge_leads(keep=keep, duplicate=dup, by=admin_user, reason="test")
    assert list(LeadSignals.objects.values_list("lead_id", flat=True)) == [keep.pk]  # the duplicate's dropped
    assert list(DirtyLead.objects.values_list("lead_id", flat=True)) == [keep.pk]
    rescore_dirty(as_of=NOW)
    keep.refresh_from_db()
    reference = evaluate(keep, version, as_of=NOW)
    assert reference.interest > 0
    assert keep.score == pytest.approx(reference.score, abs=0.01)
    assert keep.interest_score == pytest.approx(reference.interest, abs=0.01)


# --- the same person by another spelling ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "canonical"),
    [
        ("  J.Doe+News@GoogleMail.com ", "jdoe@gmail.com"),
        ("j.d.o.e@gmail.com", "jdoe@gmail.com"),
        ("jane+work@outlook.com", "jane@outlook.com"),
        ("jane.doe+x@icloud.com", "jane.doe@icloud.com"),
        ("Jane.Doe@Firma.example", "jane.doe@firma.example"),  # a company's server may tell these apart
        ("jane+sales@firma.example", "jane+sales@firma.example"),
        ("x@sub.gmail.com", "x@sub.gmail.com"),
        ("", ""),
    ],
)
def test_canonical_email_folds_only_spellings_the_provider_delivers_to_one_mailbox(email, canonical):
    assert canonical_email(email) == canonical


local_parts = st.text(alphabet="abcxyz.+_-1", min_size=1, max_size=12)
domains = st.sampled_from(
    ["gmail.com", "googlemail.com", "outlook.com", "icloud.com", "firma.example", "gmail.com.example"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(addresses=st.lists(st.tuples(local_parts, domains), min_size=1, max_size=8, unique=True))
def test_the_sql_canonical_address_agrees_with_the_python_one(addresses):
    Lead.objects.all().delete()
    emails = [f"{local}@{domain}" for local, domain in addresses]
    Lead.objects.bulk_create([Lead(email=email, stage_id="mgl") for email in emails])
    in_sql = dict(Lead.objects.annotate(canonical=canonical_email_sql()).values_list("email", "canonical"))
    assert in_sql == {email: canonical_email(email) for email in emails}


def test_duplicates_are_found_by_canonical_address_and_merged_into_the_oldest():
    oldest = LeadFactory(email="jane.doe@gmail.com", created_at=NOW - timedelta(days=9))
    newer = LeadFactory(email="janedoe+fair@googlemail.com", created_at=NOW - timedelta(days=2))
    newest = LeadFactory(email="jane.doe+web@gmail.com", created_at=NOW)
    other = [LeadFactory(email="jane.doe@firma.example"), LeadFactory(email="janedoe@firma.example")]
    TouchpointFactory(lead=newest)
    assert find_duplicate_leads() == [[oldest.pk, newer.pk, newest.pk]]

    call_command("merge_duplicates")  # a dry run by default
    assert Lead.objects.count() == 5
    call_command("merge_duplicates", "--apply")
    assert set(Lead.objects.values_list("pk", flat=True)) == {oldest.pk, *(lead.pk for lead in other)}
    assert Touchpoint.objects.get().lead_id == oldest.pk
    assert set(LeadMerge.objects.values_list("system_actor", flat=True)) == {"merge_duplicates"}
    assert find_duplicate_leads() == []


def test_the_bulk_pass_skips_a_group_it_may_not_merge_and_merges_the_rest(rep, other_rep, capsys):
    stuck = [LeadFactory(email="a.b@gmail.com"), LeadFactory(email="ab@gmail.com")]
    for lead, owner in zip(stuck, [rep, other_rep], strict=True):
        handover(lead, owner)
    LeadFactory(email="c@outlook.com"), LeadFactory(email="c+x@outlook.com")
    call_command("merge_duplicates", "--apply")
    assert '"merged": 1, "refused": 1' in capsys.readouterr().out
    assert Lead.objects.filter(pk__in=[lead.pk for lead in stuck]).count() == 2


def test_merge_into_oldest_is_all_or_nothing(admin_user, rep, other_rep):
    a, b, c = (LeadFactory(created_at=NOW - timedelta(days=n)) for n in (3, 2, 1))
    handover(a, rep)
    handover(c, other_rep)
    with pytest.raises(MergeRefused):
        merge_into_oldest(lead_ids=[a.pk, b.pk, c.pk], by=admin_user)
    assert Lead.objects.count() == 3
    assert not LeadMerge.objects.exists()


# --- the ingest path --------------------------------------------------------------------------------------


@pytest.fixture
def key():
    return ApiKey.issue(name="Website")[1]


def send(client, key, **fields):
    body = {
        "event_id": str(uuid.uuid4()),
        "type": "form_submit",
        "occurred_at": timezone.now().isoformat(),
        **fields,
    }
    response = client.post("/api/v1/events", body, content_type="application/json", HTTP_X_API_KEY=key)
    assert response.status_code == 202, response.content
    return Touchpoint.objects.get(client_event_id=body["event_id"])


def test_an_event_naming_one_leads_address_and_anothers_external_id_merges_them(client, key):
    by_address = LeadFactory(email="max@firma.example", last_name="", created_at=NOW - timedelta(days=5))
    by_crm_id = LeadFactory(
        email="", external_id="crm-7", last_name="Muster", created_at=NOW - timedelta(days=1)
    )
    TouchpointFactory.create_batch(2, lead=by_crm_id)
    touchpoint = send(client, key, email="Max@Firma.example", external_id="crm-7")
    assert touchpoint.lead_id == by_address.pk  # the older record is kept
    assert not Lead.objects.filter(pk=by_crm_id.pk).exists()
    by_address.refresh_from_db()
    assert (by_address.external_id, by_address.last_name) == ("crm-7", "Muster")
    assert Touchpoint.objects.filter(lead=by_address).count() == 3
    merge = LeadMerge.objects.get()
    assert (merge.system_actor, merge.actor, merge.reason) == ("capture", None, "one event named both")
    assert DirtyLead.objects.filter(lead=by_address).exists()
    # Later events naming the merged lead's external id reach the kept lead.
    assert send(client, key, external_id="crm-7").lead_id == by_address.pk


def test_an_event_with_another_spelling_of_a_known_gmail_address_joins_that_lead(client, key):
    known = LeadFactory(email="jane.doe@gmail.com")
    assert send(client, key, email="JaneDoe+Webinar@googlemail.com").lead_id == known.pk
    assert Lead.objects.count() == 1
    # At a company's own domain the dots may matter: a different address is a different lead.
    colleague = LeadFactory(email="jane.doe@firma.example")
    assert send(client, key, email="janedoe@firma.example").lead_id != colleague.pk
    assert Lead.objects.count() == 3


def test_a_batch_spelling_one_new_mailbox_two_ways_makes_one_lead(client, key):
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "type": "page_view",
            "occurred_at": timezone.now().isoformat(),
            "email": email,
        }
        for email in ("new.person@gmail.com", "newperson+x@gmail.com")
    ]
    response = client.post(
        "/api/v1/events/batch", {"events": events}, content_type="application/json", HTTP_X_API_KEY=key
    )
    assert response.json()["accepted"] == 2
    lead = Lead.objects.get()
    assert Touchpoint.objects.filter(lead=lead).count() == 2


def test_a_new_address_with_a_known_external_id_joins_that_lead_and_becomes_its_address(client, key):
    known = LeadFactory(email="", external_id="crm-9")
    assert send(client, key, email="neu@firma.example", external_id="crm-9").lead_id == known.pk
    known.refresh_from_db()
    assert known.email == "neu@firma.example"
    assert Lead.objects.count() == 1
    assert not LeadMerge.objects.exists()


def test_an_event_naming_two_leads_with_open_handovers_is_stored_without_merging_them(
    client, key, rep, other_rep
):
    by_address = LeadFactory(email="max@firma.example")
    by_crm_id = LeadFactory(email="", external_id="crm-7")
    handover(by_address, rep)
    handover(by_crm_id, other_rep)
    assert send(client, key, email="max@firma.example", external_id="crm-7").lead_id == by_address.pk
    assert Lead.objects.count() == 2
    assert not LeadMerge.objects.exists()


# --- who may merge ----------------------------------------------------------------------------------------


def test_a_rep_or_marketing_cannot_trigger_the_merge_action(client, rep, marketer, pair):
    keep, dup = pair
    rep.is_staff = True
    rep.save()
    rep.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_lead", "change_lead", "delete_lead"])
    )
    for user in (rep, marketer):
        client.force_login(user)
        changelist = client.get(reverse("admin:leads_lead_changelist"))
        assert changelist.status_code == 200
        assert "merge_selected" not in changelist.text
        admin_merge(client, [keep, dup])
        assert Lead.objects.filter(pk__in=[keep.pk, dup.pk]).count() == 2
        assert client.get(reverse("admin:leads_leadmerge_changelist")).status_code == 403
    assert not LeadMerge.objects.exists()


def test_an_admin_confirms_the_merge_on_a_page_listing_the_leads_first(client_for, admin_user, pair):
    keep, dup = pair
    client = client_for(admin_user)
    assert "merge_selected" in client.get(reverse("admin:leads_lead_changelist")).text
    page = client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "merge_selected", helpers.ACTION_CHECKBOX_NAME: [str(keep.pk), str(dup.pk)]},
    )
    assert page.status_code == 200
    assert "Yes, merge them" in page.text
    assert "anna.schmidt@firma.example" in page.text
    assert (
        Lead.objects.filter(pk__in=[keep.pk, dup.pk]).count() == 2
    )  # nothing happens before the confirmation
    one = client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "merge_selected", helpers.ACTION_CHECKBOX_NAME: [str(keep.pk)], "post": "yes"},
        follow=True,
    )
    assert "Select at least two leads to merge." in one.text


def test_the_merge_admin_is_read_only_and_bad_searches_do_not_fail(client_for, admin_user, pair):
    keep, dup = pair
    merge = merge_leads(keep=keep, duplicate=dup, by=admin_user, reason="test")
    client = client_for(admin_user)
    assert client.get(reverse("admin:leads_leadmerge_change", args=[merge.pk])).status_code == 200
    assert client.get(reverse("admin:leads_leadmerge_add")).status_code == 403
    for term in ("not-a-number", str(dup.pk), "crm-42"):
        response = client.get(reverse("admin:leads_leadmerge_changelist"), {"q": term})
        assert response.status_code == 200
    lead_page = client.get(reverse("admin:leads_lead_change", args=[keep.pk]))
    assert "merged into this lead" in lead_page.text.lower()


# --- PostgreSQL: the index is used, and concurrent merges neither deadlock nor lose rows ------------------


@pytest.mark.postgres
def test_finding_a_lead_by_another_spelling_uses_the_canonical_index():
    LeadFactory(email="jane.doe@gmail.com")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    query = (
        Lead.objects.filter(canonical_email_domains_q())
        .alias(canonical=canonical_email_sql())
        .filter(canonical__in=["janedoe@gmail.com"])
    )
    assert "lead_canonical_email_idx" in query.explain()
    assert leads_by_email(["j.a.n.e.doe@gmail.com"]) == {"j.a.n.e.doe@gmail.com": Lead.objects.get().pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_threads_merging_overlapping_pairs_end_with_one_lead_and_every_touchpoint():
    from leadcockpit.demo.seeding import ensure_reference_data

    ensure_reference_data()  # transactional tests start from a flushed database
    leads = [LeadFactory() for _ in range(12)]
    for lead in leads:
        TouchpointFactory.create_batch(2, lead=lead)
    pairs = [(a.pk, b.pk) for a in leads for b in leads if a.pk != b.pk]
    errors = []

    def work(seed):
        mine = pairs[:]
        random.Random(seed).shuffle(mine)
        try:
            for keep, dup in mine[:40]:
                merge_leads(keep=keep, duplicate=dup, system="test")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    survivors = list(Lead.objects.values_list("pk", flat=True))
    merged = set(LeadMerge.objects.values_list("merged_lead_id", flat=True))
    assert len(survivors) + len(merged) == 12
    assert set(survivors) | merged == {lead.pk for lead in leads}
    assert Touchpoint.objects.count() == 24
    assert set(Touchpoint.objects.values_list("lead_id", flat=True)) <= set(survivors)
    assert set(LeadMerge.objects.values_list("lead_id", flat=True)) <= set(survivors)
