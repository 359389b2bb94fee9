from __future__ import annotations

import uuid

from django import forms
from django.core.exceptions import ValidationError

from identity.models import Application, Scope
from organizations.models import Organization
from organizations.selectors import org_in_tree_order


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False, max_length=254)
    given_name = forms.CharField(max_length=150, required=False, label="Given name")
    family_name = forms.CharField(max_length=150, required=False, label="Family name")
    password = forms.CharField(
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters; not a common or all-numeric password.",
    )


class RoleCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    audience = forms.ChoiceField(
        choices=[("organization", "This organization"), ("application", "An application")],
        widget=forms.RadioSelect,
        initial="organization",
    )
    audience_application = forms.ModelChoiceField(
        queryset=Application.objects.none(),
        required=False,
        label="Application",
        empty_label="Choose an application",
    )
    permissions = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        to_field_name="name",
    )

    def __init__(
        self, *args: object, applications: list[Application], scopes: list[Scope], **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["audience_application"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Application.objects.filter(pk__in=[a.pk for a in applications]).order_by("name")
        perms = self.fields["permissions"]
        assert isinstance(perms, forms.ModelMultipleChoiceField)
        perms.queryset = Scope.objects.filter(pk__in=[s.pk for s in scopes]).order_by("name")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("audience") == "application" and not data.get("audience_application"):
            self.add_error("audience_application", "Choose the application this role is for.")
        if data.get("audience") == "organization":
            data["audience_application"] = None
        return data


class RolePermissionsForm(forms.Form):
    permissions = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        to_field_name="name",
    )

    def __init__(self, *args: object, scopes: list[Scope], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        perms = self.fields["permissions"]
        assert isinstance(perms, forms.ModelMultipleChoiceField)
        perms.queryset = Scope.objects.filter(pk__in=[s.pk for s in scopes]).order_by("name")


class RoleAssignForm(forms.Form):
    """Who gets a role: the person clicked in the user picker (``user_id``). An exact
    ``username`` is still accepted from clients that post one."""

    user_id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    username = forms.CharField(max_length=150, required=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("user_id") and not (data.get("username") or "").strip():
            raise ValidationError("Choose a person.")
        return data


class UserPickerForm(forms.Form):
    """The user picker's search: the start of a username, email address or name."""

    q = forms.CharField(
        max_length=100,
        required=False,
        label="Find by username, email or name",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
    )
    after = forms.CharField(max_length=400, required=False)


class UUIDListField(forms.Field):
    """Several UUIDs (checkboxes with one name); at most ``max_items``."""

    widget = forms.MultipleHiddenInput

    def __init__(self, *, max_items: int = 100, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.max_items = max_items

    def to_python(self, value: object) -> list[uuid.UUID]:
        if not value:
            return []
        items = value if isinstance(value, list | tuple) else [value]
        if len(items) > self.max_items:
            raise ValidationError(f"Choose at most {self.max_items} at a time.")
        try:
            return list(dict.fromkeys(uuid.UUID(str(item)) for item in items))
        except ValueError as exc:
            raise ValidationError("Choose from the list.") from exc


class UserShareForm(forms.Form):
    organizations = UUIDListField(
        max_items=100, error_messages={"required": "Choose at least one organization."}
    )


class UserUnshareForm(forms.Form):
    organization = forms.UUIDField(widget=forms.HiddenInput)
    back = forms.ChoiceField(choices=[("user", "user"), ("sharing", "sharing")], required=False)


class RoleUnassignForm(forms.Form):
    user_id = forms.UUIDField(widget=forms.HiddenInput)


def apply_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: field errors on their fields when the
    form has them, everything else as a form-wide error."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            target = field if field in form.fields else None
            for error in errors:
                form.add_error(target, error)
    else:
        form.add_error(None, exc)


# --- Applications -------------------------------------------------------------------------

CLIENT_TYPE_CHOICES = [
    (Application.CLIENT_CONFIDENTIAL, "Confidential (a server that can keep a client secret)"),
    (Application.CLIENT_PUBLIC, "Public (a browser or mobile app; no secret, PKCE instead)"),
]


class URIListField(forms.CharField):
    """URLs one per line (or separated by spaces), as a list."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("max_length", 4000)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def prepare_value(self, value: object) -> object:
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        if isinstance(value, str):
            return "\n".join(value.split())
        return value

    def to_python(self, value: object) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):  # a disabled field cleans its initial list
            return [str(v) for v in value]
        text = super().to_python(value)
        return text.split() if text else []

    def run_validators(self, value: object) -> None:
        # max_length and the NUL check apply to the text as typed, not to the parsed list.
        super().run_validators(" ".join(value) if isinstance(value, list) else value)

    def has_changed(self, initial: object, data: object) -> bool:
        return self.to_python(self.prepare_value(initial)) != self.to_python(data)


def _grant_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=Application.GRANT_TYPE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        label="Grant types",
        error_messages={"required": "Choose at least one grant type."},
    )


class ApplicationCreateForm(forms.Form):
    name = forms.CharField(max_length=255)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=1000, required=False)
    client_type = forms.ChoiceField(
        choices=CLIENT_TYPE_CHOICES,
        widget=forms.RadioSelect,
        initial=Application.CLIENT_CONFIDENTIAL,
        label="Client type",
    )
    grant_types = _grant_field()
    redirect_uris = URIListField(
        label="Redirect URIs", help_text="Where sign-in returns to: one http(s) URL per line."
    )
    pkce_required = forms.BooleanField(
        required=False,
        initial=True,
        label="Require PKCE",
        help_text=(
            "The application must send a PKCE code challenge (S256) with each sign-in, so a stolen "
            "authorization code is of no use to anyone else. A public client always needs it. Many "
            "sign-in libraries leave it off by default: mozilla-django-oidc needs OIDC_USE_PKCE = True, "
            'django-allauth\'s OpenID Connect provider "OAUTH_PKCE_ENABLED": True. Untick it only for '
            "a confidential client whose library cannot send PKCE."
        ),
    )

    field_order = ["name", "description", "client_type", "grant_types", "redirect_uris", "pkce_required"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["grant_types"].initial = [
            Application.GRANT_AUTHORIZATION_CODE_TYPE,
            Application.GRANT_REFRESH_TOKEN_TYPE,
        ]


class ApplicationGeneralForm(forms.Form):
    name = forms.CharField(max_length=255)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000, required=False)
    discoverable = forms.BooleanField(
        required=False,
        label="Discoverable application",
        help_text="List it in My Account, where users (and impersonators) launch it from its access URL.",
    )
    access_url = forms.CharField(
        max_length=200,
        required=False,
        label="Access URL",
        help_text="The page My Account opens for this application.",
        widget=forms.URLInput,
    )


class ApplicationProtocolForm(forms.Form):
    client_type = forms.ChoiceField(
        choices=CLIENT_TYPE_CHOICES, widget=forms.RadioSelect, label="Client type"
    )
    grant_types = _grant_field()
    redirect_uris = URIListField(label="Redirect URIs", help_text="One http(s) URL per line.")
    post_logout_redirect_uris = URIListField(
        label="Post-logout redirect URIs",
        help_text="Where RP-initiated logout may return to: one http(s) URL per line.",
    )
    pkce_required = forms.BooleanField(
        required=False,
        label="Require PKCE",
        help_text=(
            "Refuse sign-ins without a PKCE code challenge (S256). A public client always needs it; "
            "untick it only for a confidential client whose library cannot send PKCE."
        ),
    )
    access_token_lifetime = forms.IntegerField(
        min_value=1, max_value=31536000, label="Access token lifetime (seconds)"
    )
    refresh_token_lifetime = forms.IntegerField(
        min_value=1, max_value=31536000, label="Refresh token lifetime (seconds)"
    )
    id_token_lifetime = forms.IntegerField(
        min_value=1, max_value=31536000, label="ID token lifetime (seconds)"
    )
    subject_token_enabled = forms.BooleanField(
        required=False,
        label="Subject token enabled",
        help_text="Let this application request subject tokens to impersonate users.",
    )
    subject_token_expiry = forms.IntegerField(
        min_value=1, max_value=3600, label="Subject token expiry (seconds)", help_text="Default 180."
    )

    SYSTEM_LOCKED = ("client_type", "grant_types", "redirect_uris", "post_logout_redirect_uris")

    def __init__(self, *args: object, locked: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if locked:
            for name in self.SYSTEM_LOCKED:
                self.fields[name].disabled = True

    @staticmethod
    def initial_for(app: Application) -> dict[str, object]:
        return {
            "client_type": app.client_type,
            "grant_types": list(app.grant_types or []),
            "redirect_uris": app.redirect_uris.split(),
            "post_logout_redirect_uris": app.post_logout_redirect_uris.split(),
            "pkce_required": app.pkce_required,
            "access_token_lifetime": app.access_token_lifetime,
            "refresh_token_lifetime": app.refresh_token_lifetime,
            "id_token_lifetime": app.id_token_lifetime,
            "subject_token_enabled": app.subject_token_enabled,
            "subject_token_expiry": app.subject_token_expiry,
        }


class ApplicationAdvancedForm(forms.Form):
    skip_login_consent = forms.BooleanField(
        required=False,
        label="Skip login consent",
        help_text="Do not ask users to approve the scopes at sign-in.",
    )
    skip_logout_consent = forms.BooleanField(
        required=False, label="Skip logout consent", help_text="Do not ask users to confirm sign-out."
    )


class ApplicationShareForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[
            (Application.SharedAccess.NONE, "Do not share"),
            (Application.SharedAccess.ALL, "Share with all organizations (including ones created later)"),
            (Application.SharedAccess.SELECTED, "Share with only selected organizations"),
        ],
        widget=forms.RadioSelect,
        label="Sharing",
    )
    organizations = forms.ModelMultipleChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Organizations",
    )

    def __init__(self, *args: object, organizations: list[Organization], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["organizations"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = org_in_tree_order(Organization.objects.filter(pk__in=[o.pk for o in organizations]))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("mode") != Application.SharedAccess.SELECTED:
            data["organizations"] = []
        elif "organizations" in data and not data["organizations"]:
            self.add_error("organizations", "Choose at least one organization.")
        return data


class APIAuthorizeForm(forms.Form):
    resource = forms.UUIDField(widget=forms.HiddenInput)
    scopes = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        to_field_name="name",
        label="Authorized scopes",
        error_messages={"required": "Choose at least one scope."},
    )

    def __init__(self, *args: object, scopes: list[Scope], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["scopes"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = Scope.objects.filter(pk__in=[s.pk for s in scopes]).order_by("name")


class APIUnauthorizeForm(forms.Form):
    resource = forms.UUIDField(widget=forms.HiddenInput)


class ApplicationRoleForm(RolePermissionsForm):
    name = forms.CharField(max_length=120, label="Role name")

    field_order = ["name", "permissions"]


class ApplicationDeleteForm(forms.Form):
    confirm = forms.CharField(max_length=255, label="Type the application's name to confirm", strip=True)

    def __init__(self, *args: object, application: Application, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.application = application

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"]
        if value != self.application.name:
            raise ValidationError("This is not the application's name.")
        return value


# --- API resources ------------------------------------------------------------------------


class APIResourceForm(forms.Form):
    identifier = forms.CharField(
        max_length=255, help_text="How applications name the API, usually its URL (https://api.example.com)."
    )
    name = forms.CharField(max_length=255)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=1000, required=False)


class ScopeForm(forms.Form):
    name = forms.CharField(
        max_length=150, label="Scope", help_text="As it appears in tokens, e.g. orders:read."
    )
    display_name = forms.CharField(max_length=255, required=False, label="Display name")
    description = forms.CharField(max_length=1000, required=False)
    read_only = forms.BooleanField(
        required=False, label="Read-only", help_text="Kept by read-only impersonation."
    )


ScopeFormSet = forms.formset_factory(ScopeForm, extra=3, max_num=20, absolute_max=20, validate_max=True)
