"""System checks that refuse an unsafe production configuration."""

from django.conf import settings
from django.core.checks import Error, Tags, register

INSECURE_PREFIX = "django-insecure"


@register(Tags.security, deploy=False)
def production_settings_are_safe(app_configs, **kwargs):
    """With DEBUG off the cockpit needs a real SECRET_KEY and explicit ALLOWED_HOSTS."""
    if settings.DEBUG:
        return []
    errors = []
    key = settings.SECRET_KEY or ""
    if key.startswith(INSECURE_PREFIX) or len(key) < 50 or len(set(key)) < 5:
        errors.append(
            Error(
                "DEBUG is off but SECRET_KEY is the development default or too weak.",
                hint="Set SECRET_KEY in the environment to at least 50 random characters.",
                id="leadcockpit.E001",
            )
        )
    if not settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "DEBUG is off but ALLOWED_HOSTS is empty or a wildcard.",
                hint="Set ALLOWED_HOSTS to the host names the cockpit is served under, comma-separated.",
                id="leadcockpit.E002",
            )
        )
    return errors
