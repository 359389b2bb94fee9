from __future__ import annotations

from django import forms

from organizations.models import handle_validator


class OrganizationCreateForm(forms.Form):
    parent = forms.UUIDField(widget=forms.HiddenInput)
    name = forms.CharField(max_length=120)
    handle = forms.CharField(
        max_length=50,
        validators=[handle_validator],
        help_text="Lowercase letters, digits and hyphens; unique in this tenant.",
    )

    def clean_handle(self) -> str:
        return str(self.cleaned_data["handle"]).strip().lower()
