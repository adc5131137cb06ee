from django.urls import path

from . import views

app_name = "handover"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("handovers/<int:pk>/<slug:decision>/", views.decide, name="decide"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
]
