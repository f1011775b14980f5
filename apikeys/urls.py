from __future__ import annotations

from django.urls import path

from apikeys import views

urlpatterns = [
    path("keys/", views.current_keys, name="current_keys"),
    path("orgs/<slug:slug>/keys/", views.key_list, name="key_list"),
    path("orgs/<slug:slug>/keys/<int:key_id>/", views.key_detail, name="key_detail"),
    path("orgs/<slug:slug>/keys/<int:key_id>/revoke", views.key_revoke, name="key_revoke"),
    path("orgs/<slug:slug>/keys/<int:key_id>/rotate", views.key_rotate, name="key_rotate"),
]
