"""Lead Cockpit settings: one module, read from the environment.

With nothing set, the cockpit runs on SQLite with Celery tasks executed in-process (the embedded default).
DATABASE_URL switches to PostgreSQL, REDIS_URL to a real broker and cache, EMAIL_URL to real mail.
"""

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
INSECURE_SECRET_KEY = "django-insecure-lead-cockpit-development-key"  # noqa: S105 - refused by core.checks

env = environ.Env()
env.read_env(BASE_DIR / ".env")  # optional; the process environment wins

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "leadcockpit.accounts",
    "leadcockpit.core",
    "leadcockpit.capture",
    "leadcockpit.leads",
    "leadcockpit.scoring",
    "leadcockpit.handover",
    "leadcockpit.insights",
    "leadcockpit.demo",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_countries",
    "django_filters",
    "django_htmx",
    "template_partials",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "leadcockpit.capture.middleware.IngestCorsMiddleware",
    "leadcockpit.core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "leadcockpit.urls"
WSGI_APPLICATION = "leadcockpit.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "leadcockpit.accounts.context_processors.navigation",
                "leadcockpit.scoring.context_processors.review_reminders",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# --- Database: SQLite by default, PostgreSQL through DATABASE_URL -------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60 if not DEBUG else 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dev server read while a seed or task writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker and cache when REDIS_URL is set; otherwise tasks run in-process ---------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "leadcockpit",
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Signed email links: how long they stay good, and the hosts a click may redirect to (no open redirect).
EMAIL_LINK_MAX_AGE = env.int("EMAIL_LINK_MAX_AGE_DAYS", default=90) * 86400
EMAIL_LINK_HOSTS = env.list("EMAIL_LINK_HOSTS", default=["solvaro.example"])

# Events a source may send per second (a batch counts each event); beyond it the ingest API answers 429.
INGEST_EVENTS_PER_SECOND = env.int("INGEST_EVENTS_PER_SECOND", default=5000)

# The largest CSV file an import takes (a 100k-lead export is about 15 MB).
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_MB", default=50) * 1024 * 1024

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis may vanish: a publish must fail fast instead of hanging a web request.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5, "max_retries": 1}
CELERY_TIMEZONE = "UTC"

# Periodic jobs, all in one place. Each entry says why it runs at its pace.
# What runs when rescoring made new MQLs (scoring itself knows nothing of routing).
SCORING_NEW_MQLS_TASK = "leadcockpit.handover.tasks.route_pending"
# What runs, inside the merge's transaction, on a lead that absorbed a duplicate (leads knows nothing of scoring).
LEADS_MERGED_HOOK = "leadcockpit.scoring.actions.mark_dirty"

CELERY_BEAT_SCHEDULE = {
    # Proves the worker and beat are alive; /health/ reports how long ago the last heartbeat landed.
    "worker-heartbeat": {"task": "leadcockpit.core.tasks.heartbeat", "schedule": 60.0},
    # Dirty leads are rescored on commit; this catches what a lost Redis message left behind, within seconds.
    "rescoring-sweep": {"task": "leadcockpit.scoring.tasks.sweep_rescoring", "schedule": 15.0},
    # Interest fades with half-lives of days: hourly keeps stored scores within an hour of the truth.
    "scoring-decay-tick": {"task": "leadcockpit.scoring.tasks.decay_tick", "schedule": 3600.0},
    # New MQLs are routed on commit; this routes those whose message was lost, within seconds.
    "routing-sweep": {"task": "leadcockpit.handover.tasks.route_pending", "schedule": 10.0},
    # Reminders before the deadline to accept or reject, escalation to managers when it passes.
    "handover-sla-tick": {"task": "leadcockpit.handover.tasks.sla_tick", "schedule": 60.0},
    # Imports run on commit; this picks up a queued import whose message was lost or whose worker died.
    "import-sweep": {"task": "leadcockpit.capture.tasks.sweep_imports", "schedule": 60.0},
    # The cockpit reads rollups; each refresh costs only what changed, and a minute behind is fresh for a dashboard.
    "insights-refresh": {"task": "leadcockpit.insights.tasks.refresh_rollups", "schedule": 60.0},
    # Daily full rebuild: catches what no watermark sees (company edits, deleted leads without a trail).
    "insights-rebuild": {"task": "leadcockpit.insights.tasks.rebuild_rollups", "schedule": 24 * 3600.0},
    # Attribution credits follow new touchpoints and stage changes the same way, and are rebuilt daily too.
    "insights-credits-refresh": {"task": "leadcockpit.insights.tasks.refresh_credits", "schedule": 60.0},
    "insights-credits-rebuild": {
        "task": "leadcockpit.insights.tasks.rebuild_credits",
        "schedule": 24 * 3600.0,
    },
    # Notification mail is an outbox in the database; this sends what a lost message left unsent.
    "notification-mail-sweep": {
        "task": "leadcockpit.handover.tasks.send_notification_emails",
        "schedule": 30.0,
    },
    # Learning runs whose message was lost are re-enqueued; each active version gets a validity report once a
    # day (the task skips versions reported on within 20 hours), flagged when its validity dropped.
    "scoring-evidence-check": {"task": "leadcockpit.scoring.tasks.check_evidence", "schedule": 3600.0},
}

# --- Mail --------------------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Lead Cockpit <cockpit@localhost>")
# Where the cockpit is reached, for links in its mail (e.g. https://cockpit.example.com).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Passwords, sessions, security -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # htmx reads the token from hx-headers on <body>, not from the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Strict policy: scripts and styles only from our own origin, no inline code.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
)

# --- Internationalisation ----------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("de", _("German"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["leadcockpit.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Berlin")
USE_I18N = True
USE_TZ = True

# --- Static files ------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Lead Cockpit ------------------------------------------------------------------------------------------
LEAD_LIST_PAGE_SIZE = 50
# Past this many matches the list says "10,000+" instead of counting every row.
LEAD_LIST_COUNT_LIMIT = 10_000
# A worker heartbeat older than this marks the worker as stale on /health/.
WORKER_HEARTBEAT_STALE_AFTER_S = 300
