from django.urls import include, path

from . import views

app_name = "insights"
urlpatterns = [
    path("", views.cockpit, name="cockpit"),
    path("panels/<slug:name>/", views.panel, name="panel"),
    path("panels/<slug:name>/<slug:table>.csv", views.panel_csv, name="panel_csv"),
    path("", include("leadcockpit.insights.urls_attribution")),
]
