from __future__ import annotations

from django.urls import path, re_path

from metering import request_views, statement_views, views

urlpatterns = [
    path("dashboard/", views.current_dashboard, name="current_dashboard"),
    path("usage/", views.current_usage, name="current_usage"),
    path("orgs/<slug:slug>/dashboard/", views.dashboard, name="dashboard"),
    path("orgs/<slug:slug>/usage/", views.usage, name="usage"),
    path("orgs/<slug:slug>/models/", views.models, name="models"),
    path("orgs/<slug:slug>/requests/", request_views.request_log, name="request_log"),
    path("orgs/<slug:slug>/requests/<str:request_id>/", request_views.request_detail, name="request_detail"),
    # A plan page that reads usage (metering/statement_views.py).
    # /plan/statements/2026/03/: a four-digit year and a two-digit month, as people write them.
    re_path(
        r"^orgs/(?P<slug>[-a-zA-Z0-9_]+)/plan/statements/(?P<year>[0-9]{4})/(?P<month>0[1-9]|1[0-2])/$",
        statement_views.plan_statement,
        name="plan_statement",
    ),
]
