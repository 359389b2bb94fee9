"""My Account's forms: input shape only; the services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from identity.services.users import EMAIL_MAX, PROFILE_NAME_MAX
from impersonation.misuse import MAX_MISUSE_NOTE


class ProfileForm(forms.Form):
    given_name = forms.CharField(label="Given name", max_length=PROFILE_NAME_MAX, required=False)
    family_name = forms.CharField(label="Family name", max_length=PROFILE_NAME_MAX, required=False)
    email = forms.EmailField(label="Email address", max_length=EMAIL_MAX, required=False)

    def __init__(self, *args: Any, impersonating: str = "", **kwargs: Any) -> None:
        """``impersonating``: the name of the user being impersonated, whose email address
        stays as it is (the service refuses a change: DESIGN §7)."""
        super().__init__(*args, **kwargs)
        if impersonating:
            email = self.fields["email"]
            email.widget.attrs["readonly"] = True
            email.help_text = (
                f"{impersonating}'s email address cannot be changed while you are impersonating them."
            )


class MisuseReportForm(forms.Form):
    note = forms.CharField(
        label="What happened (optional)",
        max_length=MAX_MISUSE_NOTE,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Your administrators receive this with the details of the impersonation.",
    )
