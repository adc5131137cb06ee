from django.urls import path

from . import evidence_views, views

app_name = "scoring"
urlpatterns = [
    path("leads/<int:pk>/score/", views.lead_score, name="lead_score"),
    path("scoring/", views.overview, name="overview"),
    path("scoring/diff/", views.diff, name="diff"),
    path("scoring/versions/<int:pk>/", views.version_detail, name="version"),
    path("scoring/versions/<int:pk>/preview/", views.version_preview, name="version_preview"),
    path("scoring/versions/<int:pk>/thresholds/", views.save_thresholds, name="thresholds"),
    path("scoring/versions/<int:pk>/criteria/<slug:kind>/", views.add_criterion, name="add_criterion"),
    path("scoring/versions/<int:pk>/comments/", views.add_comment, name="comment"),
    path("scoring/versions/<int:pk>/reject/", views.reject_version, name="reject"),
    path("scoring/versions/<int:pk>/validity/", evidence_views.validity_report, name="validity"),
    path(
        "scoring/versions/<int:pk>/validity/compute/",
        evidence_views.compute_validity,
        name="compute_validity",
    ),
    path("scoring/models/<int:pk>/evidence/", evidence_views.evidence, name="evidence"),
    path("scoring/models/<int:pk>/evidence/learn/", evidence_views.start_learning, name="learn"),
    path("scoring/learning-runs/<int:pk>/draft/", evidence_views.draft_from_run, name="draft_from_run"),
    # propose, approve, rollback, draft; after the named paths above, which it would otherwise swallow
    path("scoring/versions/<int:pk>/<slug:step>/", views.version_step, name="version_step"),
    path("scoring/criteria/<int:pk>/", views.save_criterion, name="criterion"),
    path("scoring/criteria/<int:pk>/delete/", views.delete_criterion, name="delete_criterion"),
    path("scoring/criteria/<int:pk>/move/<slug:direction>/", views.move_criterion, name="move_criterion"),
    path("scoring/jobs/<int:pk>/", views.job_progress, name="job_progress"),
]
