"""Console pages owned by identity: the overview and Users (with sharing a user)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_console_user,
    access_share_organization,
    access_user_sharing,
)
from identity.console.extensions import user_page_panels
from identity.console.shell import Console, console_page
from identity.forms import (
    UserCreateForm,
    UserPickerForm,
    UserShareForm,
    UserUnshareForm,
    apply_service_errors,
)
from identity.models import User
from identity.selectors.roles import user_roles_in_org
from identity.selectors.users import (
    org_member_page,
    user_holds_roles_in,
    user_memberships,
    user_share_candidate_page,
    user_shared_orgs_below,
)
from identity.services.users import user_create, user_share_with, user_unshare
from organizations.selectors import org_effective_settings


@console_page(scope=None)
def home(request: HttpRequest, console: Console) -> HttpResponse:
    return render(
        request,
        "identity/console/home.html",
        {"console": console, "settings": org_effective_settings(console.org)},
    )


# --- Users --------------------------------------------------------------------------------


@console_page(scope="internal_user_mgt_list")
def user_list(request: HttpRequest, console: Console) -> HttpResponse:
    search = request.GET.get("q", "")[:100].replace("\x00", "")
    after = request.GET.get("after") or None
    # "subtree": also the users resident in the organizations below this one.
    subtree = request.GET.get("scope") == "subtree"
    page = org_member_page(
        org=console.org,
        search=search,
        after=after,
        size=settings.ACTAS_CONSOLE_PAGE_SIZE,
        subtree=subtree,
    )
    return render(
        request,
        "identity/console/user_list.html",
        {
            "console": console,
            "page": page,
            "q": search,
            "after": after,
            "subtree": subtree,
            # the search and scope the pager links keep
            "query": urlencode([(k, v) for k, v in (("q", search), ("scope", "subtree" * subtree)) if v]),
        },
    )


@console_page(scope="internal_user_mgt_create")
@require_http_methods(["GET", "POST"])
def user_create_view(request: HttpRequest, console: Console) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(actor=console.user, org=console.org, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"User {user.username} created.")
            return HttpResponseRedirect(console.url("user-detail", user.pk))
    status = 400 if request.method == "POST" else 200
    return render(
        request, "identity/console/user_create.html", {"console": console, "form": form}, status=status
    )


@console_page(scope="internal_user_mgt_view")
def user_detail(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    member = access_console_user(org=console.org, user_id=user_id)
    return render(
        request,
        "identity/console/user_detail.html",
        {
            "console": console,
            "member": member,
            "is_shared": member.organization_id != console.org.pk,
            "memberships": user_memberships(member, within=console.org),
            "roles": user_roles_in_org(user=member, org=console.org),
            # Sharing is managed in the Console of the user's resident organization.
            "can_share": member.organization_id == console.org.pk
            and "internal_user_mgt_update" in console.scopes,
            # What other apps add to the page (identity.console.extensions).
            "panels": user_page_panels(request, console, member),
        },
    )


# --- Sharing a user with the organizations below their own ---------------------------------


def _sharing_page(
    request: HttpRequest, console: Console, member: User, form: UserShareForm, *, status: int = 200
) -> HttpResponse:
    picker = UserPickerForm(request.GET)
    search = picker.cleaned_data["q"] if picker.is_valid() else ""
    after = (picker.cleaned_data["after"] or None) if picker.is_valid() else None
    page = user_share_candidate_page(
        user=member, org=console.org, search=search, after=after, size=settings.ACTAS_CONSOLE_PAGE_SIZE
    )
    return render(
        request,
        "identity/console/user_sharing.html",
        {
            "console": console,
            "member": member,
            "shared": user_shared_orgs_below(user=member, org=console.org),
            "page": page,
            "form": form,
            "q": search,
            "after": after,
        },
        status=status,
    )


@console_page(scope="internal_user_mgt_update")
@require_http_methods(["GET", "POST"])
def user_sharing(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    """Share a user with organizations below their own (and see where they are shared)."""
    member = access_user_sharing(org=console.org, user=access_console_user(org=console.org, user_id=user_id))
    form = UserShareForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        orgs = [
            access_share_organization(org=console.org, org_id=pk) for pk in form.cleaned_data["organizations"]
        ]
        try:
            created = user_share_with(actor=console.user, user=member, orgs=orgs)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            names = ", ".join(a.organization.name for a in created)
            if created:
                messages.success(request, f"{member.username} is now shared with {names}.")
            else:
                messages.info(request, f"{member.username} was already shared with those organizations.")
            return HttpResponseRedirect(console.url("user-detail", member.pk))
    return _sharing_page(request, console, member, form, status=400 if request.method == "POST" else 200)


@console_page(scope="internal_user_mgt_update")
@require_POST
def user_unshare_view(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    """Stop sharing a user with one organization (their roles and sign-ins there end)."""
    member = access_user_sharing(org=console.org, user=access_console_user(org=console.org, user_id=user_id))
    form = UserUnshareForm(request.POST)
    back = console.url("user-detail", member.pk)
    if not form.is_valid():
        messages.error(request, "Choose the organization to stop sharing with.")
        return HttpResponseRedirect(back)
    if form.cleaned_data["back"] == "sharing":
        back = console.url("user-sharing", member.pk)
    target = access_share_organization(org=console.org, org_id=form.cleaned_data["organization"])
    if user_holds_roles_in(user=member, org=target) and not console.can("internal_role_mgt_update"):
        # Stopping the sharing removes their roles there: only for those who may remove roles.
        messages.error(
            request,
            f"{member.username} holds roles in {target.name}; stopping the sharing would remove them, "
            "which needs the permission to manage roles.",
        )
        return HttpResponseRedirect(back)
    try:
        user_unshare(actor=console.user, user=member, org=target)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{member.username} is no longer shared with {target.name}.")
    return HttpResponseRedirect(back)
