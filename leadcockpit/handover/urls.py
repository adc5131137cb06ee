from django.urls import path

from . import views

app_name = "handover"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("handovers/<int:pk>/<slug:decision>/", views.decide, name="decide"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
    path("feedback/", views.feedback, name="feedback"),
    path("routing/", views.routing, name="routing"),
    path("routing/teams/<int:team_id>/", views.team_settings, name="team_settings"),
    path("routing/reps/<int:rep_id>/", views.rep_availability, name="rep_availability"),
    path("routing/rules/new/", views.rule_edit, name="rule_new"),
    path("routing/rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("leads/<int:pk>/sales/", views.sales_work, name="sales_work"),
    path("leads/<int:pk>/sales/activities/", views.log_activity, name="log_activity"),
    path("leads/<int:pk>/sales/stage/", views.move_stage, name="move_stage"),
    path("leads/<int:pk>/sales/qualify/", views.qualify, name="qualify"),
]
