"""Settings come from the environment; unsafe production settings are refused."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "x9$kq2!vB7#mZp4@Lr8^tW1&nC6*hY3(eJ5)uG0-sF2+dA7=oI9"


def manage(*args, **env):
    unset = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_off_with_the_development_key_is_refused():
    result = manage("check", DEBUG="False", ALLOWED_HOSTS="cockpit.example.com")
    assert result.returncode != 0
    assert "leadcockpit.E001" in result.stderr


def test_debug_off_without_allowed_hosts_is_refused():
    result = manage("check", DEBUG="False", SECRET_KEY=STRONG_KEY)
    assert result.returncode != 0
    assert "leadcockpit.E002" in result.stderr


def test_deploy_check_passes_with_production_like_settings():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="False",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="cockpit.example.com",
    )
    assert result.returncode == 0, result.stderr


def test_nothing_set_means_sqlite_and_eager_tasks():
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'leadcockpit.settings'); django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.CACHES['default']['BACKEND'],"
        " s.EMAIL_BACKEND)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "EMAIL_URL")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [
        "django.db.backends.sqlite3",
        "True",
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.mail.backends.console.EmailBackend",
    ]


def test_environment_switches_to_postgres_redis_and_smtp():
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'leadcockpit.settings'); django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL,"
        " s.CACHES['default']['BACKEND'], s.EMAIL_BACKEND, s.EMAIL_HOST)"
    )
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://u:p@db.example:5432/cockpit",
        "REDIS_URL": "redis://cache.example:6379/1",
        "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example:587",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [
        "django.db.backends.postgresql",
        "False",
        "redis://cache.example:6379/1",
        "django.core.cache.backends.redis.RedisCache",
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example",
    ]
