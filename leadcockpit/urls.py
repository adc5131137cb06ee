from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from leadcockpit.capture.api import api as ingest_api
from leadcockpit.core.views import health, home

urlpatterns = [
    path("", home, name="home"),
    path("leads/", include("leadcockpit.leads.urls")),
    path("cockpit/", include("leadcockpit.insights.urls")),
    path("", include("leadcockpit.scoring.urls")),
    path("", include("leadcockpit.handover.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("health/", health, name="health"),
    path("api/v1/", ingest_api.urls),
    path("", include("leadcockpit.capture.urls")),
    path("admin/", admin.site.urls),
]
