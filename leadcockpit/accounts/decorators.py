from functools import wraps

from django.core.exceptions import PermissionDenied

from .roles import role_of


def role_required(view):
    """Refuse signed-in users who hold none of the cockpit's roles (403); put it under @login_required."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if role_of(request.user) is None:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
