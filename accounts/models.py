"""People who use the portal. The email address is the login; a user who signed in with a wallet only has no email
(NULL), so Sign-In with Ethereum never invents an address."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def normalize_email(email: str | None) -> str | None:
    """Emails are compared and stored lower-case; an empty address is no address."""
    email = (email or "").strip().lower()
    return email or None


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str | None, password: str | None, **fields: Any) -> User:
        user = self.model(email=normalize_email(email), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email: str | None = None, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        if not email:
            raise ValueError("A superuser needs an email address")
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", unique=True, null=True, blank=True)
    name = models.CharField(max_length=150, blank=True, default="")
    is_staff = models.BooleanField(default=False, help_text="May log in to the operators' admin site.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints: ClassVar = [
            # Stored lower-case (normalize_email), so uniqueness is case-insensitive; NULL (wallet-only) repeats.
            models.CheckConstraint(condition=models.Q(email=Lower("email")), name="accounts_user_email_lowercase"),
        ]

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    def __str__(self) -> str:
        return self.email or self.name or f"user {self.pk}"

    def get_full_name(self) -> str:
        return self.name or self.email or ""

    def get_short_name(self) -> str:
        return self.name or (self.email or "").split("@")[0]
