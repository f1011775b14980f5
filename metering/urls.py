from __future__ import annotations

from django.urls import path

from metering import request_views, views

urlpatterns = [
    path("dashboard/", views.current_dashboard, name="current_dashboard"),
    path("usage/", views.current_usage, name="current_usage"),
    path("orgs/<slug:slug>/dashboard/", views.dashboard, name="dashboard"),
    path("orgs/<slug:slug>/usage/", views.usage, name="usage"),
    path("orgs/<slug:slug>/models/", views.models, name="models"),
    path("orgs/<slug:slug>/requests/", request_views.request_log, name="request_log"),
    path("orgs/<slug:slug>/requests/<str:request_id>/", request_views.request_detail, name="request_detail"),
]
