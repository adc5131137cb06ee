"""CSV import through HTTP: upload, mapping with a guess and presets, preview, the background run, the report of
rejected rows; encodings and delimiters, damaged files, idempotency, access and hostile input."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from leadcockpit.capture import importing
from leadcockpit.capture.models import ImportJob, ImportPreset, ImportRejection
from leadcockpit.leads.models import Campaign, Company, Lead, SalesActivity, StageChange, Touchpoint
from leadcockpit.scoring.models import DirtyLead

from .conftest import SHARED_DATA
from .factories import CampaignFactory, LeadFactory, UserFactory

X_EDUCATION = SHARED_DATA / "x-education"
PRESET = "X Education (Leads.csv)"


@pytest.fixture
def importer(client_for, marketer):
    return client_for(marketer)


def upload(client, data, *, kind="leads", name="leads.csv", preset=None):
    payload = {"kind": kind, "file": _file(data, name)}
    if preset:
        payload["preset"] = ImportPreset.objects.get(name=preset).pk
    return client.post(reverse("capture:imports"), payload)


def _file(data, name):
    handle = io.BytesIO(data if isinstance(data, bytes) else data.encode())
    handle.name = name
    return handle


def mapping_post(job, **overrides):
    """The mapping form as the page would post it, with the job's current (guessed) mapping."""
    data = {}
    for position, entry in enumerate(job.mapping["columns"]):
        data[f"c{position}_target"] = entry.get("target", "")
        data[f"c{position}_type"] = entry.get("type", "text")
        data[f"c{position}_provenance"] = entry.get("provenance", "marketing")
    data.update(overrides)
    return data


def run_import(client, data, django_capture_on_commit_callbacks, **kwargs):
    """Upload, accept the guessed mapping, start; the job runs on commit (tasks in-process)."""
    response = upload(client, data, **kwargs)
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.latest("pk")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("capture:import_detail", args=[job.pk]), {**mapping_post(job), "action": "start"}
        )
    assert response.status_code == 302
    job.refresh_from_db()
    return job


LEADS_CSV = (
    "Email,First name,Last name,Company,Domain,Industry,Employees,Country,Job title,Budget\n"
    "anna@alpha.example,Anna,Albrecht,Alpha GmbH,alpha.example,Manufacturing,250,Germany,CTO,approved\n"
    'ben@beta.example,Ben,"Berg, Jr.",Beta AG,beta.example,software,"1,200",DE,Head of IT,\n'
    "not-an-email,Carl,Clausen,Gamma,gamma.example,,,,,\n"
    "dora@alpha.example,Dora,Dietz,Alpha GmbH,alpha.example,manufacturing,250,DE,Buyer,someday\n"
)


def test_a_marketer_imports_leads_with_their_companies_and_gets_the_rejected_rows_with_reasons(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    job = run_import(importer, LEADS_CSV, django_capture_on_commit_callbacks)

    assert (job.status, job.created, job.updated, job.rejected) == ("done", 2, 0, 2)
    anna = Lead.objects.select_related("company").get(email="anna@alpha.example")
    assert (anna.first_name, anna.budget, anna.source, anna.stage_id) == ("Anna", "approved", "import", "mgl")
    assert (anna.company.name, anna.company.industry, anna.company.employee_count) == (
        "Alpha GmbH",
        "manufacturing",
        250,
    )
    assert anna.company.country == "DE"
    ben = Lead.objects.get(email="ben@beta.example")
    assert ben.last_name == "Berg, Jr."  # a quoted comma stays in its field
    assert ben.company.employee_count == 1200
    assert StageChange.objects.filter(lead=anna, system_actor="import", to_stage_id="mgl").count() == 1
    assert Company.objects.count() == 2

    reasons = dict(ImportRejection.objects.filter(job=job).values_list("row_number", "reason"))
    assert "is not an email address" in reasons[4]
    assert "Budget" in reasons[5]
    assert "someday" in reasons[5]

    report = importer.get(reverse("capture:import_report", args=[job.pk]))
    assert report.status_code == 200
    lines = list(csv.reader(io.StringIO(b"".join(report.streaming_content).decode("utf-8-sig"))))
    assert lines[0][:3] == ["Row", "Reason", "Email"]
    assert [line[0] for line in lines[1:]] == ["4", "5"]
    assert lines[1][2] == "not-an-email"


def test_importing_the_same_file_twice_changes_nothing(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    run_import(importer, LEADS_CSV, django_capture_on_commit_callbacks)
    before = list(Lead.objects.order_by("pk").values())
    DirtyLead.objects.all().delete()

    again = run_import(importer, LEADS_CSV, django_capture_on_commit_callbacks)

    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 2, 2)
    assert list(Lead.objects.order_by("pk").values()) == before
    assert not DirtyLead.objects.exists()
    assert StageChange.objects.filter(system_actor="import").count() == 2


def test_a_changed_file_updates_only_what_changed_and_blank_cells_erase_nothing(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    run_import(importer, LEADS_CSV, django_capture_on_commit_callbacks)
    changed = "Email,Job title,First name\nANNA@alpha.example,CEO,\nben@beta.example,Head of IT,Ben\n"
    job = run_import(importer, changed, django_capture_on_commit_callbacks)

    assert (job.created, job.updated, job.unchanged) == (0, 1, 1)
    anna = Lead.objects.get(email="anna@alpha.example")
    assert (anna.job_title, anna.first_name) == ("CEO", "Anna")


@pytest.mark.parametrize(
    ("data", "encoding_name"),
    [
        (
            "\ufeffE-Mail;Vorname;Nachname;Umsatz\nmia@delta.example;Mia;Müller;1.234.567,50\n".encode(),
            "utf-8",
        ),
        (
            "E-Mail;Vorname;Nachname;Umsatz\nmia@delta.example;Mia;Müller;1.234.567,50\n".encode("cp1252"),
            "windows-1252",
        ),
        (
            'email,first name,last name,revenue\r\nmia@delta.example,Mia,Müller,"1,234,567.50"\r\n'.encode(),
            "utf-8",
        ),
    ],
    ids=["utf8-bom-semicolon", "windows-1252-semicolon", "utf8-comma-crlf"],
)
def test_german_and_english_files_read_alike(
    importer, tasks_in_process, django_capture_on_commit_callbacks, data, encoding_name
):
    data = data.replace(b"Umsatz", b"Firma;Umsatz").replace(b"M\xc3\xbcller;1", b"M\xc3\xbcller;Delta;1")
    data = data.replace(b"M\xfcller;1", b"M\xfcller;Delta;1").replace(b"revenue", b"company,revenue")
    data = data.replace(b"M\xc3\xbcller,", b"M\xc3\xbcller,Delta,")
    job = run_import(importer, data, django_capture_on_commit_callbacks)

    assert job.encoding == encoding_name
    assert (job.created, job.rejected) == (1, 0)
    mia = Lead.objects.select_related("company").get(email="mia@delta.example")
    assert mia.last_name == "Müller"
    assert mia.company.annual_revenue == Decimal("1234568")  # whole euros


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty."),
        (b"\xef\xbb\xbf  \r\n", "The file is empty."),
        (b"email,name\n", "no data rows"),
        (b"PK\x03\x04\x14\x00\x08\x08" + bytes(range(256)) * 4, "Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "Excel workbook"),
        (bytes(range(256)) * 40, "not text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "not text"),
    ],
    ids=["empty", "bom-and-blanks", "header-only", "xlsx", "xls", "binary-junk", "pdf"],
)
def test_a_file_that_is_not_csv_gets_a_clear_message_and_imports_nothing(importer, data, message):
    response = upload(importer, data)

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not ImportJob.objects.exists()
    assert not Lead.objects.exists()


def test_the_mapping_is_guessed_and_the_preview_shows_each_rows_messages(importer):
    upload(importer, LEADS_CSV)
    job = ImportJob.objects.get()
    targets = [entry["target"] for entry in job.mapping["columns"]]
    assert targets == [
        "email",
        "first_name",
        "last_name",
        "company_name",
        "company_domain",
        "company_industry",
        "company_employee_count",
        "company_country",
        "job_title",
        "budget",
    ]

    page = importer.get(reverse("capture:import_detail", args=[job.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "will be rejected" in html
    assert "is not an email address" in html
    assert 'id="import-preview"' in html

    # Change a column as the page does (htmx, on change): the preview follows the posted mapping.
    fragment = importer.post(
        reverse("capture:import_detail", args=[job.pk]),
        {**mapping_post(job, c9_target=""), "action": "preview"},
        HTTP_HX_REQUEST="true",
    )
    assert fragment.status_code == 200
    assert "someday" not in fragment.content.decode()
    assert "<html" not in fragment.content.decode()
    job.refresh_from_db()
    assert job.status == "mapping"  # a preview writes nothing
    assert not Lead.objects.exists()


def test_a_mapping_outside_the_allowlist_or_without_a_key_is_refused_with_a_message(importer):
    upload(importer, LEADS_CSV)
    job = ImportJob.objects.get()
    url = reverse("capture:import_detail", args=[job.pk])

    hostile = importer.post(url, {**mapping_post(job, c1_target="is_superuser"), "action": "start"})
    assert hostile.status_code == 422
    assert "Select a valid choice" in hostile.content.decode()

    twice = importer.post(url, {**mapping_post(job, c2_target="first_name"), "action": "start"})
    assert twice.status_code == 422
    assert "chosen for two columns" in twice.content.decode()

    keyless = importer.post(url, {**mapping_post(job, c0_target=""), "action": "start"})
    assert keyless.status_code == 422
    assert "Choose a column for Email or External id" in keyless.content.decode()

    job.refresh_from_db()
    assert job.status == "mapping"
    assert not Lead.objects.exists()


def test_a_mapping_saved_as_a_preset_is_offered_for_the_next_file(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    upload(importer, "Mail address,Surname,Fav colour\nx@y.example,Xu,blue\n")
    job = ImportJob.objects.get()
    data = mapping_post(job, c0_target="email", c1_target="last_name", preset_name="Fair list")
    with django_capture_on_commit_callbacks(execute=True):
        importer.post(reverse("capture:import_detail", args=[job.pk]), {**data, "action": "start"})
    preset = ImportPreset.objects.get(name="Fair list")
    assert preset.mapping["Mail address"] == {"target": "email"}
    assert preset.mapping["Fav colour"]["target"] == "attribute"
    assert Lead.objects.get(email="x@y.example").attributes == {"fav_colour": "blue"}

    upload(importer, "Fav colour,Mail address\nred,z@y.example\n", preset="Fair list")
    second = ImportJob.objects.latest("pk")
    assert [entry["target"] for entry in second.mapping["columns"]] == ["attribute", "email"]


def test_touchpoints_sales_activities_and_campaign_costs_import_once(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    lead = LeadFactory(email="eva@epsilon.example", external_id="CRM-7")
    rep = UserFactory(role="sales rep", username="rep7")
    campaigns = (
        "Campaign,Channel,Cost,Start,End,UTM\n"
        'Spring fair,Trade fair,"12.500,00",01.03.2026,31.03.2026,spring-fair\n'
        "Webinar series,webinar,900,2026-02-01,,\n"
        "Broken,carrier pigeon,5,2026-02-01,,\n"
    )
    touchpoints = (
        "Email,Type,Date,URL,UTM campaign\n"
        "eva@epsilon.example,Page view,2026-03-02 10:00,https://solvaro.example/pricing,spring-fair\n"
        "eva@epsilon.example,demo_request,2026-03-03T09:30:00+01:00,,\n"
        "nobody@nowhere.example,page_view,2026-03-03,,\n"
    )
    activities = (
        "External ID,Kind,Outcome,Date,Note,Rep\nCRM-7,Call,reached,05.03.2026 14:00,Wants a quote,rep7\n"
        "CRM-7,Meeting,,06.03.2026,,ghost\n"
    )
    for kind, data, expected in [
        ("campaign_costs", campaigns, (2, 1)),
        ("touchpoints", touchpoints, (2, 1)),
        ("sales_activities", activities, (1, 1)),
    ]:
        job = run_import(importer, data, django_capture_on_commit_callbacks, kind=kind)
        assert (job.created, job.rejected) == expected, kind
        again = run_import(importer, data, django_capture_on_commit_callbacks, kind=kind)
        assert (again.created, again.updated, again.rejected) == (0, 0, expected[1]), kind

    fair = Campaign.objects.get(name="Spring fair")
    assert (fair.channel_id, fair.cost, str(fair.ends_on)) == (
        "trade_fair",
        Decimal("12500.00"),
        "2026-03-31",
    )
    assert Touchpoint.objects.filter(lead=lead).count() == 2
    assert Touchpoint.objects.get(lead=lead, kind="page_view").campaign == fair
    call = SalesActivity.objects.get(lead=lead)
    assert (call.kind, call.outcome, call.rep, call.note) == ("call", "reached", rep, "Wants a quote")
    assert (
        "ghost" in ImportRejection.objects.filter(job__kind="sales_activities", row_number=3).first().reason
    )

    raised = run_import(
        importer,
        "Campaign,Cost\nWebinar series,1100\n",
        django_capture_on_commit_callbacks,
        kind="campaign_costs",
    )
    assert (raised.updated, raised.rejected) == (1, 0)
    assert Campaign.objects.get(name="Webinar series").cost == Decimal("1100.00")


def test_a_job_that_dies_midway_resumes_where_it_stopped(importer, monkeypatch):
    monkeypatch.setattr(importing, "CHUNK_ROWS", 3)
    rows = "".join(f"lead{n}@zeta.example,Lead {n}\n" for n in range(10))
    upload(importer, "email,last name\n" + rows)
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(status="queued")

    calls = {"n": 0}
    real = importing.write_chunk

    def dies_on_the_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(importing, "write_chunk", dies_on_the_second_chunk)
    with pytest.raises(SystemExit):
        importing.run_job(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.next_row, job.created) == ("running", 3, 3)

    importing.run_job(job_id=job.pk)  # a second delivery while the first claim is fresh: nothing happens
    assert Lead.objects.count() == 3

    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=job.heartbeat_at - importing.STALE_AFTER * 2)
    importing.run_job(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.next_row, job.created, job.rejected) == ("done", 10, 10, 0)
    assert Lead.objects.count() == 10
    assert DirtyLead.objects.count() == 10  # each chunk marked its leads for scoring with its own commit


@pytest.mark.parametrize("role", ["sales rep", "sales manager"])
def test_sales_cannot_import_nor_see_imports(client_for, marketer, role, inside_team):
    job = importing.create_job(kind="leads", filename="a.csv", data=b"email\na@b.example\n", by=marketer)
    client = client_for(UserFactory(role=role, team=inside_team))

    assert client.get(reverse("capture:imports")).status_code == 403
    assert upload(client, LEADS_CSV).status_code == 403
    for name in ["capture:import_detail", "capture:import_progress", "capture:import_report"]:
        assert client.get(reverse(name, args=[job.pk])).status_code == 403
    assert client.post(reverse("capture:import_discard", args=[job.pk])).status_code == 403
    assert ImportJob.objects.filter(pk=job.pk).exists()


def test_imports_change_state_only_by_post_with_csrf(marketer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    job = importing.create_job(kind="leads", filename="a.csv", data=b"email\na@b.example\n", by=marketer)

    assert upload(client, LEADS_CSV).status_code == 403
    assert client.post(reverse("capture:import_discard", args=[job.pk])).status_code == 403
    assert client.get(reverse("capture:import_discard", args=[job.pk])).status_code == 405
    assert ImportJob.objects.count() == 1


XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def test_hostile_cells_render_inert_in_the_preview_the_results_and_the_report(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    out = io.StringIO()
    csv.writer(out).writerows(
        [
            ["email", "last name", "note", "job title"],
            ["q@x.example", XSS, XSS, '=HYPERLINK("x")'],
            ["bad", XSS, "", ""],
        ]
    )
    data = out.getvalue()
    response = upload(importer, data, name=f"{XSS}.csv")
    job = ImportJob.objects.latest("pk")
    page = importer.get(response.url).content.decode()
    assert "<script>alert(1)" not in page
    assert "onerror=alert(2)>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    with django_capture_on_commit_callbacks(execute=True):
        importer.post(response.url, {**mapping_post(job), "action": "start"})
    for url in [response.url, reverse("capture:imports"), reverse("leads:list")]:
        html = importer.get(url).content.decode()
        assert "<script>alert(1)" not in html, url
        assert "onerror=alert(2)>" not in html, url
    lead = Lead.objects.get(email="q@x.example")
    assert lead.attributes["note"] == XSS
    html = importer.get(reverse("leads:detail", args=[lead.pk])).content.decode()
    assert "<script>alert(1)" not in html
    assert 'id="lead-attributes"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    report = b"".join(
        importer.get(reverse("capture:import_report", args=[job.pk])).streaming_content
    ).decode()
    cells = next(csv.reader(io.StringIO(report.splitlines()[1])))
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)


@pytest.mark.shared_data
def test_the_x_education_file_imports_completely_with_the_shipped_preset(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    data = (X_EDUCATION / "Leads.csv").read_bytes()
    job = run_import(importer, data, django_capture_on_commit_callbacks, preset=PRESET, name="Leads.csv")

    assert (job.status, job.total_rows, job.created, job.rejected) == ("done", 9240, 9240, 0)
    lead = Lead.objects.get(external_id="7927b2df-8bba-4d29-b9a2-b6e0beafe620")
    attributes = lead.attributes
    assert attributes["lead_origin"] == "API"
    assert attributes["converted"] is False
    assert attributes["totalvisits"] == 0.0
    assert "specialization" not in attributes  # "Select" is a placeholder, not a value
    assert attributes["tags"] == "Interested in other courses"
    sources = set(Lead.objects.values_list("attributes__lead_source", flat=True))
    assert "Google" in sources
    assert "google" not in sources
    assert Lead.objects.filter(attributes__converted=True).count() == 3561
    preset = ImportPreset.objects.get(name=PRESET)
    assert preset.mapping["Tags"]["provenance"] == "sales"
    assert preset.mapping["Converted"]["provenance"] == "outcome"

    again = run_import(importer, data, django_capture_on_commit_callbacks, preset=PRESET, name="Leads.csv")
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 9240, 0)

    trailing = (X_EDUCATION / "variants" / "Leads__KeerthanaDS1994__trailing-comma.csv").read_bytes()
    variant = run_import(importer, trailing, django_capture_on_commit_callbacks, preset=PRESET)
    assert (variant.total_rows, variant.created, variant.updated, variant.rejected) == (9240, 0, 0, 0)
    assert variant.mapping["columns"][-1]["target"] == ""  # the unnamed trailing column is left out


@pytest.mark.shared_data
def test_the_x_education_workbook_named_csv_is_refused_with_advice(importer):
    data = (X_EDUCATION / "variants" / "Leads__khajanawaz__actually-xlsx.csv").read_bytes()
    response = upload(importer, data, preset=PRESET, name="Leads.csv")

    assert response.status_code == 422
    assert "Excel workbook" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_the_campaign_a_lead_came_from_is_found_by_name(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    CampaignFactory(name="Autumn webinar")
    job = run_import(
        importer,
        "email,campaign\nw@x.example,autumn WEBINAR\nv@x.example,Nope\n",
        django_capture_on_commit_callbacks,
    )
    assert (job.created, job.rejected) == (1, 1)
    assert Lead.objects.get(email="w@x.example").campaign.name == "Autumn webinar"


def test_a_number_too_large_for_an_attribute_rejects_its_row_and_the_rest_import(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    job = run_import(
        importer, "email;score\na@x.example;1e400\nb@x.example;2\n", django_capture_on_commit_callbacks
    )

    assert (job.status, job.created, job.rejected) == (ImportJob.Status.DONE, 1, 1)
    assert "is not a number" in ImportRejection.objects.get(row_number=2).reason
    assert Lead.objects.get().attributes == {"score": 2.0}


def test_a_nul_character_after_the_first_64_kb_rejects_its_row_and_the_rest_import(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    rows = "".join(f"u{n}@x.example,hello\n" for n in range(5000))  # past the part checked for binary data
    data = f'email,note\n{rows}z@x.example,"a\x00b"\nlast@x.example,bye\n'

    job = run_import(importer, data, django_capture_on_commit_callbacks)

    assert (job.status, job.created, job.rejected) == (ImportJob.Status.DONE, 5001, 1)
    rejection = ImportRejection.objects.get()
    assert (rejection.row_number, rejection.cells) == (5002, ["z@x.example", "ab"])
    assert "NUL" in rejection.reason
    assert importer.get(reverse("capture:import_report", args=[job.pk])).status_code == 200


def test_two_columns_kept_as_the_same_attribute_are_refused_rather_than_one_overwriting_the_other(importer):
    upload(importer, "email,Lead Origin,lead-origin\na@x.example,web,mail\n")
    job = ImportJob.objects.get()

    response = importer.post(
        reverse("capture:import_detail", args=[job.pk]),
        {**mapping_post(job, c2_target="attribute"), "action": "start"},
    )

    assert response.status_code == 422
    assert "would both be kept as attribute" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.MAPPING
    response = importer.post(
        reverse("capture:import_detail", args=[job.pk]),
        {**mapping_post(job, c2_target=""), "action": "start"},
    )
    assert response.status_code == 302


def test_a_campaign_whose_utm_belongs_to_another_is_rejected_and_the_rest_import(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    CampaignFactory(name="Spring", utm_campaign="spring-promo")
    data = (
        "name;channel;start;utm\n"
        "Other;email;2026-01-01;Spring Promo\n"  # slugged, it is Spring's
        "Third;email;2026-01-01;third\n"
        "Fourth;email;2026-01-01;THIRD\n"  # slugged, it is the new Third's
        "spring;webinar;2026-01-01;\n"  # Spring itself, in another case: its start moves
    )

    job = run_import(importer, data, django_capture_on_commit_callbacks, kind="campaign_costs")

    assert (job.status, job.created, job.updated, job.rejected) == (ImportJob.Status.DONE, 1, 1, 2)
    assert dict(ImportRejection.objects.values_list("row_number", "reason")) == {
        2: "its UTM campaign belongs to “Spring”",
        4: "its UTM campaign belongs to “Third”",
    }
    assert sorted(Campaign.objects.values_list("name", "utm_campaign")) == [
        ("Spring", "spring-promo"),
        ("Third", "third"),
    ]


def test_a_wide_file_keeps_at_most_the_allowed_attributes_by_guess_and_can_be_started(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    header = "email," + ",".join(f"col{n}" for n in range(120))
    data = header + "\na@x.example," + ",".join("1" for _n in range(120)) + "\n"

    job = run_import(importer, data, django_capture_on_commit_callbacks)

    assert (job.status, job.created) == (ImportJob.Status.DONE, 1)
    assert len(Lead.objects.get().attributes) == importing.MAX_ATTRIBUTES


def test_a_file_with_more_columns_than_the_mapping_form_can_post_is_refused_with_a_message(importer):
    columns = importing.MAX_COLUMNS + 1
    data = (
        "email,"
        + ",".join(f"col{n}" for n in range(columns - 1))
        + "\na@x.example"
        + "," * (columns - 1)
        + "\n"
    )

    response = upload(importer, data)

    assert response.status_code == 422
    assert f"The file has {columns} columns" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_a_sales_activity_finds_its_rep_whatever_the_case_of_the_username_or_address(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    lead = LeadFactory(external_id="CRM-9")
    rep = UserFactory(role="sales rep", username="Anna.Schmidt", email="Anna.Schmidt@Solvaro.example")
    data = (
        "External ID,Kind,Date,Rep\n"
        "CRM-9,Call,05.03.2026 14:00,Anna.Schmidt\n"
        "CRM-9,Meeting,06.03.2026 10:00,anna.schmidt@solvaro.example\n"
    )

    job = run_import(importer, data, django_capture_on_commit_callbacks, kind="sales_activities")

    assert (job.created, job.rejected) == (2, 0)
    assert set(SalesActivity.objects.filter(lead=lead).values_list("rep", flat=True)) == {rep.pk}


def test_columns_that_would_share_an_attribute_name_are_not_guessed_into_a_refused_mapping(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    data = "email,Email,EMAIL,Lead Origin,lead-origin\na@x.example,b@x.example,c@x.example,web,mail\n"

    job = run_import(importer, data, django_capture_on_commit_callbacks)

    assert [entry["target"] for entry in job.mapping["columns"]] == [
        "email",
        "attribute",
        "",
        "attribute",
        "",
    ]
    assert (job.status, job.created) == (ImportJob.Status.DONE, 1)
    assert Lead.objects.get().attributes == {"email": "b@x.example", "lead_origin": "web"}


def test_an_import_row_naming_two_leads_merges_them_and_other_spellings_find_their_lead(
    importer, tasks_in_process, django_capture_on_commit_callbacks
):
    from leadcockpit.leads.models import LeadMerge

    by_address = LeadFactory(email="max.muster@gmail.com")
    LeadFactory(email="", external_id="CRM-1")
    data = (
        "Email,External ID,Job title\n"
        "max.muster@gmail.com,CRM-1,CTO\n"
        "Max.Muster+news@googlemail.com,,Head of IT\n"
    )
    job = run_import(importer, data, django_capture_on_commit_callbacks)

    assert (job.created, job.updated, job.rejected) == (0, 1, 0)
    merge = LeadMerge.objects.get()
    assert (merge.system_actor, merge.lead_id) == ("import", by_address.pk)
    kept = Lead.objects.get()
    assert (kept.pk, kept.email, kept.external_id, kept.job_title) == (
        by_address.pk,
        "max.muster@gmail.com",
        "CRM-1",
        "Head of IT",
    )
    again = run_import(importer, data, django_capture_on_commit_callbacks)
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 2, 0)
    assert Lead.objects.count() == 1
