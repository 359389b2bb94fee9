from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from identity.models import Application, Scope


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
    username = forms.CharField(
        max_length=150, help_text="A user resident in or shared into this organization."
    )


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


class LoginFlowForm(forms.Form):
    """A login flow as text: one step per line, alternatives separated by commas."""

    steps = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        max_length=2000,
        help_text="One step per line; the options of a step separated by commas.",
    )

    def clean_steps(self) -> list[list[str]]:
        text: str = self.cleaned_data["steps"]
        return [
            [name.strip() for name in line.split(",") if name.strip()]
            for line in text.splitlines()
            if line.strip()
        ]

    @staticmethod
    def as_text(steps: list[list[str]]) -> str:
        return "\n".join(", ".join(step) for step in steps)
