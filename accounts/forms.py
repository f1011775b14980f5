from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AdminUserCreationForm as BaseAdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm

from accounts.models import Role, User


class AdminUserCreationForm(BaseAdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class AdminUserChangeForm(BaseUserChangeForm):
    class Meta:
        model = User
        fields = ("email", "name")


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
