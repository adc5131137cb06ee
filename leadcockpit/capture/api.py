"""The ingest API (django-ninja): one event or a batch of up to 500, authenticated by a source's API key."""

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, OperationalError
from django.http import JsonResponse
from django.utils import timezone
from ninja import NinjaAPI, Schema, Status
from ninja.security import APIKeyHeader
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema, field_validator, model_validator

from leadcockpit.core.redis import client as redis_client
from leadcockpit.leads.models import PROPERTIES_MAX_BYTES, Touchpoint

from . import actions
from .api_docs import ReferencePage
from .models import ApiKey

log = logging.getLogger(__name__)
PAST_WINDOW = timedelta(hours=24)
FUTURE_WINDOW = timedelta(minutes=5)
MAX_BATCH = 500
EventType = Literal[tuple(Touchpoint.Kind.values)]
# Documents the rule web_address() enforces (which also accepts upper-case schemes): empty or http(s)://…
WEB_ADDRESS = {"pattern": "^(https?://|$)"}


class KeyAuth(APIKeyHeader):
    """A source's key; from a browser (an Origin header) only if that origin is one the key allows."""

    param_name = "X-Api-Key"

    def authenticate(self, request, key):
        api_key = ApiKey.objects.for_secret(key)
        origin = request.headers.get("Origin")
        if api_key is not None and origin and origin not in api_key.allowed_origins:
            return None
        return api_key


api = NinjaAPI(
    title="Lead Cockpit ingest API",
    version="1",
    urls_namespace="ingest",
    auth=KeyAuth(),
    # Ninja's Swagger page needs a CDN and inline script, which our CSP refuses: a server-rendered reference.
    docs=ReferencePage(),
    docs_url="/docs",
)


@api.exception_handler(RequestDataTooBig)
def body_too_large(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(
        request,
        {"detail": f"The request body is larger than {limit} bytes; send a smaller batch."},
        status=413,
    )


@api.exception_handler(IntegrityError)
@api.exception_handler(OperationalError)
def try_again(request, exc):
    """A conflict with concurrent work (a lead merged or deleted under the event, a deadlock) or the database
    briefly away: nothing was stored, so the sender retries; a tracker never sees a 500 for it."""
    log.warning("ingest answered 503 after a database error: %s", exc, exc_info=True)
    response = api.create_response(
        request,
        {"detail": "The events could not be stored just now; retry after a second.", "retry_after": 1},
        status=503,
    )
    response["Retry-After"] = "1"
    return response


class EventIn(BaseModel):
    """One tracked event. Name its lead by email or external id, or send a visitor id alone (anonymous)."""

    event_id: UUID = Field(description="Client-made UUID; a replay with the same id changes nothing.")
    type: EventType = Field(description="What happened.")
    occurred_at: datetime = Field(description="With a time zone; at most 24 h old and 5 min ahead.")
    url: str = Field("", max_length=2048, description="The page's address.", json_schema_extra=WEB_ADDRESS)
    referrer: str = Field(
        "", max_length=2048, description="The referring address.", json_schema_extra=WEB_ADDRESS
    )
    title: str = Field("", max_length=300, description="The page or content title.")
    search_terms: str = Field("", max_length=200, description="What the visitor searched for on the site.")
    utm_source: str = Field("", max_length=100, description="Campaign source, as in utm_source.")
    utm_medium: str = Field("", max_length=100, description="Campaign medium, as in utm_medium.")
    utm_campaign: str = Field("", max_length=100, description="Campaign name, as in utm_campaign.")
    visitor_id: str = Field(
        "", max_length=64, description="The browser's anonymous id (e.g. a first-party cookie)."
    )
    session_id: str = Field("", max_length=64, description="The visit's id.")
    email: str = Field(
        "",
        max_length=254,
        description="The lead's email address; names the lead.",
        json_schema_extra={"format": "email"},
    )
    external_id: str = Field("", max_length=100, description="The lead's id in your system; names the lead.")
    properties: dict = Field(
        default_factory=dict, description=f"Anything else, at most {PROPERTIES_MAX_BYTES} bytes as JSON."
    )

    @field_validator("url", "referrer")
    @classmethod
    def web_address(cls, value):
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("email")
    @classmethod
    def email_address(cls, value):
        if value:
            try:
                validate_email(value)
            except DjangoValidationError:
                raise ValueError("is not an email address") from None
        return value.strip()

    @field_validator("occurred_at")
    @classmethod
    def plausible_moment(cls, value):
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-23T10:00:00Z")
        now = timezone.now()
        if not now - PAST_WINDOW <= value <= now + FUTURE_WINDOW:
            raise ValueError("must lie between 24 hours ago and 5 minutes ahead")
        return value

    @field_validator("properties")
    @classmethod
    def small_properties(cls, value):
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(encoded.encode()) > PROPERTIES_MAX_BYTES:
            raise ValueError(f"are larger than {PROPERTIES_MAX_BYTES} bytes")
        if "\\u0000" in encoded:
            raise ValueError("must not contain NUL characters")
        return value

    @model_validator(mode="after")
    def no_nul_and_someone(self):
        texts = [
            self.url,
            self.referrer,
            self.title,
            self.search_terms,
            self.utm_source,
            self.utm_medium,
            self.utm_campaign,
            self.visitor_id,
            self.session_id,
            self.email,
            self.external_id,
        ]
        if any("\x00" in text for text in texts):
            raise ValueError("texts must not contain NUL characters")
        if not (self.email or self.external_id or self.visitor_id):
            raise ValueError("name the lead (email or external_id) or the visitor (visitor_id)")
        return self


class Problem(Schema):
    detail: str


class FieldProblems(Schema):
    detail: list[dict] = Field(
        description="One entry per problem: its location (loc), message (msg) and type."
    )


class Throttled(Schema):
    detail: str
    retry_after: int


def _over_limit(key, events):
    """Whether this key has sent more than its share this second (a fixed one-second window in Redis).
    With Redis away the limit is not enforced: losing events would be worse than a burst."""
    window = f"leadcockpit:ingest-rate:{key.pk}:{int(time.time())}"
    try:
        if client := redis_client():
            # One round trip on every request; the cache API would take three (add, then exists and incr).
            count = client.pipeline(transaction=False).incrby(window, events).expire(window, 2).execute()[0]
        else:
            cache.add(window, 0, timeout=2)
            count = cache.incr(window, events)
        return count > settings.INGEST_EVENTS_PER_SECOND
    except Exception:  # noqa: BLE001 - e.g. Redis away; see above
        return False


def _throttled():
    response = JsonResponse(
        {"detail": "Too many events; retry after a second.", "retry_after": 1}, status=429
    )
    response["Retry-After"] = "1"
    return response


class Accepted(Schema):
    accepted: int
    duplicates: int


class EventError(Schema):
    index: int
    errors: list[dict]


# Each event of a batch is checked on its own (see post_batch), so the model takes plain objects; the schema
# still documents them as events.
RawEvent = Annotated[dict, WithJsonSchema(EventIn.model_json_schema())]


class BatchIn(Schema):
    events: list[RawEvent] = Field(
        max_length=MAX_BATCH, description=f"Up to {MAX_BATCH} events, each as for a single event."
    )


class BatchAccepted(Accepted):
    rejected: list[EventError]


# What every call may answer besides its success: the schema documents them so clients (and the fuzz test) can
# rely on the status and body.
ERRORS = {400: Problem, 401: Problem, 413: Problem, 422: FieldProblems, 429: Throttled, 503: Throttled}
ANSWERS = {
    "openapi_extra": {
        "responses": {
            202: {
                "description": "New events are stored and committed; duplicates are counted, not stored again."
            },
            400: {"description": "The body is not JSON."},
            401: {
                "description": "No key, an unknown or revoked key, or a browser origin the key does not allow."
            },
            413: {"description": "The body is larger than the server accepts; send a smaller batch."},
            422: {"description": "The body does not match the schema; each problem names its field."},
            429: {"description": "Too many events this second; retry after retry_after seconds."},
            503: {
                "description": "Nothing was stored (a conflict with concurrent work); retry after retry_after seconds."
            },
        }
    }
}


def _errors(exc: ValidationError):
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "event", "message": e["msg"]} for e in exc.errors()
    ]


@api.post("/events", response={202: Accepted, **ERRORS}, summary="Send one event", **ANSWERS)
def post_event(request, event: EventIn):
    if _over_limit(request.auth, 1):
        return _throttled()
    result = actions.ingest(events=[event])
    return Status(202, {"accepted": result.accepted, "duplicates": result.duplicates})


@api.post(
    "/events/batch", response={202: BatchAccepted, **ERRORS}, summary="Send up to 500 events", **ANSWERS
)
def post_batch(request, batch: BatchIn):
    """Good events are stored even when others in the batch are rejected; each rejection says why."""
    if _over_limit(request.auth, len(batch.events)):
        return _throttled()
    good, rejected = [], []
    for index, raw in enumerate(batch.events):
        try:
            good.append(EventIn.model_validate(raw))
        except ValidationError as exc:
            rejected.append({"index": index, "errors": _errors(exc)})
    result = actions.ingest(events=good) if good else actions.IngestResult()
    return Status(202, {"accepted": result.accepted, "duplicates": result.duplicates, "rejected": rejected})
