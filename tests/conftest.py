"""Shared fixtures, and the rule for optional services: skip locally, fail under CI.

Tests that need PostgreSQL, Redis, Chromium or ../shared/data carry a marker (postgres, redis, browser,
shared_data). Where the resource is missing they skip on a developer's machine; with CI=true set they fail,
so CI can never go green by skipping them.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from .factories import UserFactory

# Playwright's sync API keeps an event loop running in the main thread from the first browser test to the end
# of the session; Django would then refuse every synchronous ORM call. The calls are synchronous, so allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SHARED_DATA = Path(settings.BASE_DIR).parent / "shared" / "data"


def _redis_available():
    if not settings.REDIS_URL:
        return False, "REDIS_URL is not set"
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        return False, f"Redis at REDIS_URL does not answer: {exc}"
    return True, ""


RESOURCES = {
    "postgres": lambda: (connection.vendor == "postgresql", "DATABASE_URL does not point to PostgreSQL"),
    "redis": _redis_available,
    "browser": lambda: (bool(shutil.which(CHROMIUM)), f"no Chromium at {CHROMIUM}"),
    "shared_data": lambda: (SHARED_DATA.is_dir(), f"no shared data at {SHARED_DATA}"),
}


def pytest_runtest_setup(item):
    for name, probe in RESOURCES.items():
        if item.get_closest_marker(name) is None:
            continue
        ok, why = probe()
        if ok:
            continue
        if os.environ.get("CI"):
            pytest.fail(f"{why}: under CI this test must run, not skip", pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Drive Debian's Chromium; never a downloaded browser."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def admin_user(db):
    return UserFactory(role="admin", username="admin")


@pytest.fixture
def marketer(db):
    return UserFactory(role="marketing", username="marketer")


@pytest.fixture
def inside_team(db):
    from .factories import TeamFactory

    return TeamFactory(name="Inside Sales")


@pytest.fixture
def field_team(db):
    from .factories import TeamFactory

    return TeamFactory(name="Field Sales", kind="field")


@pytest.fixture
def rep(inside_team):
    return UserFactory(role="sales rep", username="rep", team=inside_team)


@pytest.fixture
def other_rep(inside_team):
    return UserFactory(role="sales rep", username="rep2", team=inside_team)


@pytest.fixture
def field_rep(field_team):
    return UserFactory(role="sales rep", username="rep4", team=field_team)


@pytest.fixture
def manager(inside_team):
    return UserFactory(role="sales manager", username="manager", team=inside_team)


@pytest.fixture
def client_for(client):
    """Log the Django test client in as a given user."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Tests create many users; the production hasher's million rounds would dominate the suite's time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tasks_in_process():
    """Run Celery tasks in this process (the embedded default), even when REDIS_URL points at a broker."""
    from leadcockpit.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture(autouse=True)
def _no_language_carried_over():
    """A request in German activates German for the thread; the next test starts in the default language."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _reference_data_back_after_a_flush(request, django_db_blocker):
    """A transactional test (a live server, a browser) ends by flushing the database, which takes the rows the
    migrations loaded (role groups, channels, lifecycle stages, import presets) with it. pytest-django runs the
    transactional tests last, one after the other: each puts them back first, so it finds the database as
    migrated."""
    marker = request.node.get_closest_marker("django_db")
    transactional = {"live_server", "transactional_db"} & set(request.fixturenames) or (
        marker is not None and marker.kwargs.get("transaction")
    )
    if transactional:
        from django.contrib.auth.models import Group

        from leadcockpit.demo.seeding import ensure_reference_data

        request.getfixturevalue("transactional_db")
        with django_db_blocker.unblock():
            if not Group.objects.exists():
                ensure_reference_data()
