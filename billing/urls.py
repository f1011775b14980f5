from __future__ import annotations

from django.urls import path, re_path

from billing import views

urlpatterns = [
    path("orgs/<slug:slug>/plan/", views.plan_detail, name="plan_detail"),
    path("orgs/<slug:slug>/plan/upgrade", views.plan_upgrade_request, name="plan_upgrade_request"),
    # /plan/statements/2026/03/: a four-digit year and a two-digit month, as people write them.
    re_path(
        r"^orgs/(?P<slug>[-a-zA-Z0-9_]+)/plan/statements/(?P<year>[0-9]{4})/(?P<month>0[1-9]|1[0-2])/$",
        views.plan_statement,
        name="plan_statement",
    ),
]
