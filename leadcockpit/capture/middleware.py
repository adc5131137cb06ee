"""CORS for the ingest API: browsers on an origin that some active key allows may call it (the key is still
checked on every request, against that key's own origins)."""

from django.http import HttpResponse

from .models import ApiKey

API_PREFIX = "/api/v1/"
MAX_ORIGIN_LENGTH = 200


def allowed_origin(origin):
    if not origin or len(origin) > MAX_ORIGIN_LENGTH:
        return False
    return any(
        origin in (key.allowed_origins or []) for key in ApiKey.objects.active().only("allowed_origins")
    )


class IngestCorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        origin = request.headers.get("Origin")
        # A preflight (OPTIONS) is answered here: the headers below say what is allowed.
        response = HttpResponse(status=204) if request.method == "OPTIONS" else self.get_response(request)
        if allowed_origin(origin):
            response["Access-Control-Allow-Origin"] = origin
            response["Access-Control-Allow-Headers"] = "Content-Type, X-Api-Key"
            response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
        return response
