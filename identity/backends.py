"""Authentication backend: usernames are unique within an organization, not globally."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest

from identity.models import User
from organizations.models import Organization

# Hashing a throwaway password when the username is unknown takes as long as checking a
# real one, so response times do not reveal which usernames exist (Django ticket #20760).
_DUMMY = User()


class TenantUserBackend(BaseBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        org: Organization | None = None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if org is None or not username or password is None:
            return None
        user = User.objects.filter(organization=org, username=username.strip().lower()).first()
        if user is None:
            self.hash_dummy(password)
            return None
        if user.check_password(password) and user.can_sign_in:
            return user
        return None

    @staticmethod
    def hash_dummy(password: str) -> None:
        """Spend the time of a real password check on a user that does not exist."""
        _DUMMY.set_password(password)

    def get_user(self, user_id: Any) -> User | None:
        user = User.objects.select_related("organization").filter(pk=user_id).first()
        if user is None or not user.can_sign_in:
            return None
        return user
