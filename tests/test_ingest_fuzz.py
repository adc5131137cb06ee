"""The ingest API against its own OpenAPI schema (schemathesis): whatever a client sends, valid or not, the
answer is no 5xx, and its status, content type and body are ones the schema documents.

Bounded and derandomised so CI is reproducible and quick: the same examples every run.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from leadcockpit.capture.models import ApiKey

pytestmark = pytest.mark.django_db

CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


# The schema as the app serves it, fetched in-process (no server); schemathesis's client calls its host localhost.
with override_settings(ALLOWED_HOSTS=["localhost"]):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


def move_into_the_window(case):
    """Give generated events a moment inside the accepted window: no JSON Schema can say "within the last
    24 hours", and without this almost every generated event would stop at 422 before the storing code."""
    body = case.body
    events = body.get("events") if isinstance(body, dict) else None
    for event in events if isinstance(events, list) else [body]:
        if isinstance(event, dict) and isinstance(event.get("occurred_at"), str):
            event["occurred_at"] = timezone.now().isoformat()


@pytest.fixture
def connections_kept_open():
    """As in Django's test client: a WSGI request must not close the connection that holds the test's
    transaction (Django closes it at the end of each request when it is not in autocommit)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_key(settings, connections_kept_open):
    settings.ALLOWED_HOSTS = ["localhost"]
    return ApiKey.issue(name="Fuzzer")[1]


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_every_answer_of_the_ingest_api_is_one_its_schema_documents(case, api_key):
    move_into_the_window(case)
    case.call_and_validate(headers={"X-Api-Key": api_key}, checks=CHECKS)
