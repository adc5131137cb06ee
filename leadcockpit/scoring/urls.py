from django.urls import path

from . import views

app_name = "scoring"
urlpatterns = [
    path("leads/<int:pk>/score/", views.lead_score, name="lead_score"),
    path("scoring/", views.overview, name="overview"),
    path("scoring/versions/<int:pk>/<slug:step>/", views.version_step, name="version_step"),
    path("scoring/jobs/<int:pk>/", views.job_progress, name="job_progress"),
]
