"""Console → Logs: the audit trail of this organization and its subtree.

- The list (``logs``) is newest first, filtered by time window (default: the last 15
  minutes, as in Asgardeo), action (exact, or a prefix ending with ``*``), initiator,
  target, impersonator and outcome; pages go back with "Older" links (keyset on ``seq``).
- ``logs-detail`` shows one event with every field and its ``data``.
- ``logs-export-csv`` / ``logs-export-json`` stream the filtered rows (chain order, at most
  the newest 50,000); the JSON carries the chain head and each row's hashed fields,
  ``prev_hash`` and ``hash`` so an auditor can recompute them.
- The chain's verification status: recomputing the whole chain on every view would read
  every event of the tenant, so the page shows the last recorded verification and a
  "Verify now" button (POST ``logs-verify``) that runs it and records the result.

Invalid filters re-render the page with the errors in place and status 400; nothing here
changes state on GET.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from identity.audit.labels import ACTIONS
from identity.audit.models import AuditEvent
from identity.audit.selectors import (
    SEQ_MAX,
    audit_chain_head,
    audit_event_fields,
    audit_event_get,
    audit_last_verification,
)
from identity.audit.services import HASHED_FIELDS, event_hash
from identity.audit.verification import audit_chain_verify
from identity.console.shell import Console, console_page
from identity.selectors.audit_log import (
    EXPORT_MAX_ROWS,
    AuditFilters,
    audit_event_page,
    audit_event_views,
    audit_export_rows,
)

VIEW = "internal_audit_view"
DEFAULT_WINDOW = dt.timedelta(minutes=15)
# The window is written and shown in 24-hour ISO form, in UTC: 2026-12-07 14:05.
DISPLAY_FORMAT = "%Y-%m-%d %H:%M"
LINK_FORMAT = "%Y-%m-%dT%H:%M"  # in links; any ISO 8601 form is read back
TIME_PATTERN = r"\s*\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+\-]\d{2}:?\d{2})?)?\s*"
QUICK_WINDOWS = (
    ("Last 15 minutes", 15),
    ("Last hour", 60),
    ("Last 24 hours", 24 * 60),
    ("Last 7 days", 7 * 24 * 60),
)
# The action filter suggests every known action code, with its label.
ACTION_CHOICES = sorted(((code, w.label) for code, w in ACTIONS.items()), key=lambda c: c[1])
FILTER_NAMES = ("from", "to", "action", "initiator", "target_type", "target", "impersonator", "outcome")


class UTCDateTimeField(forms.Field):
    """A time in 24-hour ISO 8601 form: ``2026-12-07 14:05`` (or with ``T``, seconds, a
    fraction), read as UTC; or with an offset (``Z``, ``+02:00``), converted to UTC; or a date
    alone (its midnight, UTC). Shown back as ``2026-12-07 14:05``."""

    widget = forms.TextInput
    default_error_messages = {
        "invalid": "Enter a time as YYYY-MM-DD HH:MM in 24-hour UTC time, for example 2026-12-07 14:05.",
    }

    def to_python(self, value: Any) -> dt.datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, dt.datetime):
            parsed = value
        else:
            text = str(value).strip()
            if not text or len(text) > 40:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        try:  # an offset can push year 1 or 9999 out of range
            return parsed.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None

    def prepare_value(self, value: Any) -> Any:
        """Any time it can read is shown back as ``2026-12-07 14:05`` (UTC); what it cannot
        read is shown as typed, next to its error."""
        if isinstance(value, str) and value.strip():
            try:
                value = self.to_python(value)
            except forms.ValidationError:
                return value
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).strftime(DISPLAY_FORMAT)
        return value

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {
            **super().widget_attrs(widget),
            "placeholder": "YYYY-MM-DD HH:MM",
            "pattern": TIME_PATTERN,
            "inputmode": "numeric",
            "autocomplete": "off",
            "spellcheck": "false",
        }


class LogFilterForm(forms.Form):
    from_ = UTCDateTimeField(
        label="From (UTC)",
        required=False,
        help_text="24-hour time, e.g. 2026-12-07 14:05. Leave empty to search from the beginning.",
    )
    to = UTCDateTimeField(
        label="To (UTC)",
        required=False,
        help_text="24-hour time, e.g. 2026-12-07 18:30. Leave empty for up to now.",
    )
    action = forms.CharField(
        required=False,
        max_length=100,
        help_text="Exact action code, or a prefix ending with * (impersonation-*).",
        widget=forms.TextInput(attrs={"list": "audit-actions", "autocomplete": "off"}),
    )
    initiator = forms.CharField(required=False, max_length=150, help_text="Username or user ID.")
    target_type = forms.CharField(required=False, max_length=64, label="Target type")
    target = forms.CharField(
        required=False, max_length=255, help_text="Target ID, or the affected user's username or ID."
    )
    impersonator = forms.CharField(required=False, max_length=150, help_text="Username or user ID.")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any"), *AuditEvent.Outcome.choices], label="Outcome"
    )
    before = forms.IntegerField(required=False, min_value=1, max_value=SEQ_MAX, widget=forms.HiddenInput)

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        # "from" is a Python keyword: the form field is from_, the query parameter is from.
        self.fields["from"] = self.fields.pop("from_")
        self.order_fields(["from", "to", "action", "initiator", "target_type", "target", "impersonator"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("from"), data.get("to")
        if since and until and since >= until:
            self.add_error("to", "Choose a time after From.")
        for name in ("action", "initiator", "target_type", "target", "impersonator"):
            if isinstance(data.get(name), str):
                data[name] = data[name].strip()
        return data

    def filters(self) -> AuditFilters:
        d = self.cleaned_data
        return AuditFilters(
            since=d.get("from"),
            until=d.get("to"),
            action=d.get("action", ""),
            initiator=d.get("initiator", ""),
            target_type=d.get("target_type", ""),
            target=d.get("target", ""),
            impersonator=d.get("impersonator", ""),
            outcome=d.get("outcome", ""),
        )

    def query(self, **overrides: Any) -> str:
        """The filters as a query string (with the resolved window), for links and exports."""
        params: dict[str, str] = {}
        for name in FILTER_NAMES:
            value = overrides.get(name, self.cleaned_data.get(name))
            if isinstance(value, dt.datetime):
                value = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            params[name] = "" if value is None else str(value)
        if overrides.get("before"):
            params["before"] = str(overrides["before"])
        return urlencode(params)


def _filter_form(request: HttpRequest) -> LogFilterForm:
    """The filter form bound to the query string; with no ``from`` at all, the window is the
    last 15 minutes (an empty ``from`` means no lower bound)."""
    data = request.GET.copy()
    if "from" not in data:
        data["from"] = (timezone.now() - DEFAULT_WINDOW).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return LogFilterForm(data)


def _verification_context(console: Console) -> dict[str, Any]:
    head_seq, head_hash = audit_chain_head(org=console.org)
    last = audit_last_verification(org=console.org)
    return {
        "head_seq": head_seq,
        "head_hash": head_hash,
        "last_verification": last,
        "last_ok": bool(last is not None and last.data.get("ok")),
        # events written after the last verification was recorded (not yet checked)
        "unverified": head_seq - last.seq if last is not None else head_seq,
    }


def _quick_windows(now: dt.datetime) -> list[tuple[str, str]]:
    links = [
        (label, urlencode({"from": (now - dt.timedelta(minutes=m)).strftime(LINK_FORMAT)}))
        for label, m in QUICK_WINDOWS
    ]
    return [*links, ("All time", "from=")]


@console_page(scope=VIEW)
@require_GET
def log_list(request: HttpRequest, console: Console) -> HttpResponse:
    form = _filter_form(request)
    context: dict[str, Any] = {
        "console": console,
        "form": form,
        "quick_windows": _quick_windows(timezone.now().astimezone(dt.UTC)),
        "action_choices": ACTION_CHOICES,
        **_verification_context(console),
    }
    if not form.is_valid():
        return render(request, "identity/console/logs.html", context, status=400)
    before = form.cleaned_data.get("before")
    page = audit_event_page(
        org=console.org, filters=form.filters(), before=before, size=settings.ACTAS_CONSOLE_PAGE_SIZE
    )
    context.update(
        {
            "page": page,
            "rows": page.views,
            "before": before,
            "query": form.query(),
            "older_query": form.query(before=page.next_before) if page.next_before else "",
        }
    )
    return render(request, "identity/console/logs.html", context)


@console_page(scope=VIEW)
@require_GET
def log_detail(request: HttpRequest, console: Console, seq: int) -> HttpResponse:
    event = audit_event_get(org=console.org, seq=seq)
    if event is None:
        raise Http404("No such event.")
    fields = audit_event_fields(event)
    (view,) = audit_event_views([event])
    return render(
        request,
        "identity/console/logs_detail.html",
        {
            "console": console,
            "event": event,
            "view": view,
            "org_name": view.org_name,
            "data_json": json.dumps(
                event.data, indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder
            ),
            "hash_matches": event_hash(event.prev_hash, fields) == event.hash,
        },
    )


@console_page(scope=VIEW)
@require_POST
def log_verify(request: HttpRequest, console: Console) -> HttpResponse:
    report = audit_chain_verify(actor=console.user, org=console.org)
    if report is None:
        messages.info(request, "The chain was verified less than a minute ago: its result is shown below.")
    elif report.ok:
        verified = ngettext("%(count)d event verified", "%(count)d events verified", report.events) % {
            "count": report.events
        }
        messages.success(request, f"The audit chain is intact: {verified}.")
    else:
        messages.error(request, f"The audit chain is broken at event {report.broken_seq}: {report.reason}.")
    return HttpResponseRedirect(console.url("logs"))


# --- exports ------------------------------------------------------------------------------

# The hashed fields, in the hash's order, then the links of the chain.
CSV_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> str:
    """A spreadsheet-safe cell: values that a spreadsheet would run as a formula get a
    leading apostrophe (the JSON export keeps the exact values)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _filename(console: Console, ext: str) -> str:
    stamp = timezone.now().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"audit-{console.tenant.handle}-{console.org.handle}-{stamp}.{ext}"


def _export_form_or_400(request: HttpRequest, console: Console) -> LogFilterForm | HttpResponse:
    form = _filter_form(request)
    if form.is_valid():
        return form
    return render(
        request,
        "identity/console/logs.html",
        {"console": console, "form": form, "quick_windows": [], **_verification_context(console)},
        status=400,
    )


@console_page(scope=VIEW)
@require_GET
def log_export_csv(request: HttpRequest, console: Console) -> HttpResponse:
    form = _export_form_or_400(request, console)
    if isinstance(form, HttpResponse):
        return form
    rows, truncated = audit_export_rows(org=console.org, filters=form.filters())
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for event in rows:
            fields = audit_event_fields(event)
            fields.update(prev_hash=event.prev_hash, hash=event.hash)
            yield writer.writerow([_csv_cell(fields[c]) for c in CSV_COLUMNS])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(console, "csv")}"'
    response["X-Actas-Export-Truncated"] = "true" if truncated else "false"
    response["Cache-Control"] = "no-store"
    return cast(HttpResponse, response)  # streamed; console_page passes it through untouched


@console_page(scope=VIEW)
@require_GET
def log_export_json(request: HttpRequest, console: Console) -> HttpResponse:
    form = _export_form_or_400(request, console)
    if isinstance(form, HttpResponse):
        return form
    head_seq, head_hash = audit_chain_head(org=console.org)
    rows, truncated = audit_export_rows(org=console.org, filters=form.filters())
    header = {
        "tenant": console.tenant.handle,
        "organization": {"id": str(console.org.pk), "handle": console.org.handle, "name": console.org.name},
        "exported_at": timezone.now().astimezone(dt.UTC).isoformat(timespec="seconds"),
        "filters": {k: v for k, v in form.cleaned_data.items() if k != "before"},
        "chain_head": {"seq": head_seq, "hash": head_hash},
        "hash_algorithm": (
            "hash = sha256(prev_hash + '\\n' + canonical_json(fields)); canonical_json sorts keys, "
            "uses ',' and ':' as separators and keeps non-ASCII characters; the first event's "
            "prev_hash is 64 zeros"
        ),
        "max_rows": EXPORT_MAX_ROWS,
        "truncated": truncated,
    }

    def chunks() -> Iterator[str]:
        opening = json.dumps(header, cls=DjangoJSONEncoder, ensure_ascii=False)
        yield opening[:-1] + ', "events": ['
        first = True
        for event in rows:
            row = {"seq": event.seq, "prev_hash": event.prev_hash, "hash": event.hash}
            row["fields"] = audit_event_fields(event)
            yield ("" if first else ",") + "\n" + json.dumps(row, ensure_ascii=False)
            first = False
        yield "\n]}\n"

    response = StreamingHttpResponse(chunks(), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(console, "json")}"'
    response["Cache-Control"] = "no-store"
    return cast(HttpResponse, response)  # streamed; console_page passes it through untouched
