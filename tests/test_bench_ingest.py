"""The ingest benchmark measures only what production runs: PostgreSQL and Redis, or it says why not."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection


@pytest.mark.skipif(connection.vendor == "postgresql", reason="this is the SQLite refusal")
def test_the_ingest_benchmark_refuses_sqlite():
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("benchmark", "ingest", leads=10)


@pytest.mark.postgres
def test_the_ingest_benchmark_refuses_to_run_without_redis(settings):
    settings.REDIS_URL = ""

    with pytest.raises(CommandError, match="needs Redis"):
        call_command("benchmark", "ingest", leads=10)
