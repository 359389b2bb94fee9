"""The Console's user picker (Roles → assign, Console Settings → add administrator)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

from identity.access import (
    access_console,
    access_console_user,
    access_grant,
)
from identity.console.shell import Console
from identity.forms import (
    RoleAssignForm,
    UserPickerForm,
    apply_service_errors,
)
from identity.models import Role, User
from identity.selectors.roles import tenant_system_role
from identity.selectors.users import UserPage, org_member_page, org_members, role_holder_ids
from identity.services.roles import (
    role_assign,
)
from identity.services.tenants import ADMINISTRATOR_ROLE
from identity.services.users import normalise_username
from organizations.models import Organization

# --- the user picker (Roles → assign, Console Settings → add administrator) ---------------


@dataclass
class Picker:
    """One user picker: a search over the organization's members (resident and shared in)
    whose results each carry a button that POSTs the person's id to ``action``."""

    id: str
    action: str
    title: str
    button: str  # the visible words of each result's button
    button_hidden: str  # words a screen reader hears between the button and the username
    held: str  # shown instead of the button for people who have the role already
    org: Organization
    can_search: bool
    q: str = ""
    page: UserPage | None = None
    holders: frozenset[object] = frozenset()
    errors: RoleAssignForm | None = None


def _picker_search(request: HttpRequest | None, console: Console, role: Role, picker: Picker) -> Picker:
    """Fill ``picker`` with the results of the request's search (``q``, ``after``)."""
    if request is None:
        return picker
    form = UserPickerForm(request.GET)
    valid = form.is_valid()
    picker.q = form.cleaned_data["q"] if valid else ""
    picker.page = org_member_page(
        org=console.org,
        search=picker.q,
        after=(form.cleaned_data["after"] or None) if valid else None,
        size=settings.ACTAS_CONSOLE_PAGE_SIZE,
    )
    picker.holders = role_holder_ids(role=role, org=console.org, user_ids=[u.pk for u in picker.page.users])
    return picker


def role_picker(
    console: Console, role: Role, *, errors: RoleAssignForm | None = None, request: HttpRequest | None = None
) -> Picker:
    picker = Picker(
        id="assign",
        action=console.url("role-assign", role.pk),
        title="Assign to a user",
        button="Assign",
        button_hidden=f"{role.name} to",
        held="Has this role",
        org=console.org,
        can_search="internal_user_mgt_list" in console.scopes,
        errors=errors,
    )
    return _picker_search(request, console, role, picker)


def admin_picker(
    console: Console, *, errors: RoleAssignForm | None = None, request: HttpRequest | None = None
) -> Picker:
    administrator = tenant_system_role(tenant=console.tenant, name=ADMINISTRATOR_ROLE)
    picker = Picker(
        id="add-admin",
        action=console.url("settings-admin-add"),
        title="Add an administrator",
        button="Add administrator",
        button_hidden="role to",
        held="Administrator already",
        org=console.org,
        can_search="internal_user_mgt_list" in console.scopes,
        errors=errors,
    )
    return _picker_search(request, console, administrator, picker)


def picker_results(
    request: HttpRequest, console: Console, picker: Picker, *, heading: str, nav: str, back: tuple[str, str]
) -> HttpResponse:
    """The picker's results: the fragment for htmx, else a page of their own."""
    # Searching people is listing users: it needs that permission too.
    access_console(user=console.user, org=console.org, scope="internal_user_mgt_list", path=console.path)
    picker.title = ""  # the page's own heading names it
    context = {"console": console, "picker": picker, "heading": heading, "nav": nav, "back": back}
    if request.headers.get("HX-Request") == "true":
        response = render(request, "identity/console/_user_picker_results.html", context)
    else:
        response = render(request, "identity/console/user_picker.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _member_by_username(console: Console, form: RoleAssignForm) -> User | None:
    """The member an exact username names (the form posted before the user picker).

    A username is unique within its resident organization only: a resident wins; two users
    shared in from different organizations under one name are ambiguous and refused."""
    username = normalise_username(form.cleaned_data["username"])
    candidates = list(org_members(console.org).filter(username=username).select_related("organization"))
    residents = [u for u in candidates if u.organization_id == console.org.pk]
    member = residents[0] if residents else (candidates[0] if len(candidates) == 1 else None)
    if member is None:
        form.add_error(
            None,
            "Several members shared into this organization have this username; ask their "
            "organization's administrator."
            if candidates
            else "No member of this organization has this username.",
        )
    return member


def assign_from_form(console: Console, role: Role, form: RoleAssignForm) -> User | None:
    """Assign ``role`` to the member chosen in the user picker (``user_id``; an exact
    ``username`` is accepted too); errors land on the form. The administrator must hold every
    permission of the role (no privilege escalation)."""
    if not form.is_valid():
        return None
    if form.cleaned_data["user_id"]:
        member: User | None = access_console_user(org=console.org, user_id=form.cleaned_data["user_id"])
    else:
        member = _member_by_username(console, form)
    if member is None:
        return None
    try:
        access_grant(
            user=console.user,
            org=console.org,
            path=console.path,
            permissions=role.permissions.values_list("name", flat=True),
        )
        role_assign(actor=console.user, role=role, org=console.org, user=member)
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return None
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return None
    return member
