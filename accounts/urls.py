from __future__ import annotations

from django.urls import path

from accounts.views import invitations, organizations, wallets

urlpatterns = [
    path("accounts/siwe/", wallets.siwe_page, name="siwe"),
    path("accounts/siwe/challenge", wallets.siwe_challenge, name="siwe_challenge"),
    path("accounts/siwe/verify", wallets.siwe_verify, name="siwe_verify"),
    path("accounts/wallets/", wallets.wallets, name="wallets"),
    path("accounts/wallets/<int:wallet_id>/unlink", wallets.wallet_unlink, name="wallet_unlink"),
    path("orgs/", organizations.organization_list, name="organization_list"),
    path("orgs/switch", organizations.organization_switch, name="organization_switch"),
    path("orgs/<slug:slug>/", organizations.organization_detail, name="organization_detail"),
    path("orgs/<slug:slug>/leave", organizations.organization_leave, name="organization_leave"),
    path("orgs/<slug:slug>/members/<int:member_id>/role", organizations.member_role, name="member_role"),
    path("orgs/<slug:slug>/members/<int:member_id>/remove", organizations.member_remove, name="member_remove"),
    path("orgs/<slug:slug>/invitations/", organizations.invitation_create, name="invitation_create"),
    path(
        "orgs/<slug:slug>/invitations/<int:invitation_id>/revoke",
        organizations.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invitations/<str:token>/", invitations.invitation_accept, name="invitation_accept"),
]
