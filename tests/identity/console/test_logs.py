"""Console → Logs: the audit trail of an organization's subtree, filters, pages, detail,
exports an auditor can re-verify, and the chain's verification status."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from identity import context
from identity.audit.models import AuditChainHead, AuditEvent
from identity.audit.services import audit_record, event_hash
from identity.models import Role
from identity.services.roles import role_assign, role_create
from identity.services.users import user_profile_update, user_set_flags
from tests.conftest import World, console_url, make_user, sign_in
from tests.identity.audit_helpers import tampering


def logs(org: Any, query: str = "") -> str:
    return console_url(org, "logs/" + (f"?{query}" if query else ""))


def seqs(body: str) -> list[int]:
    """The sequence numbers of the rows of the events table, in page order."""
    table = body.split('id="audit-events"', 1)
    if len(table) == 1:
        return []
    return [int(s) for s in re.findall(r'<td><a href="[^"]*/logs/(\d+)/">', table[1])]


def record(world: World, action: str, **kwargs: Any) -> AuditEvent:
    kwargs.setdefault("org", world.root)
    kwargs.setdefault("actor", world.admin)
    return audit_record(action=action, **kwargs)


def record_at(when: dt.datetime, world: World, action: str, **kwargs: Any) -> AuditEvent:
    with mock.patch("identity.audit.services.timezone.now", return_value=when):
        return record(world, action, **kwargs)


# --- who gets in ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["logs/", "logs/1/", "logs/export.csv", "logs/export.json"])
def test_non_admin_gets_403(client: Client, world: World, page: str) -> None:
    sign_in(client, world.target)
    assert client.get(console_url(world.root, page)).status_code == 403


def test_child_admin_cannot_open_the_parents_logs(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(logs(world.root)).status_code == 403
    assert client.get(logs(world.us)).status_code == 403
    assert client.get(console_url(world.root, "logs/export.json")).status_code == 403


def test_admin_without_audit_scope_gets_403_and_no_nav_entry(client: Client, world: World) -> None:
    role = role_create(
        actor=None,
        org=world.root,
        name="User managers",
        audience_application=world.system.console,
        permissions=["internal_user_mgt_list", "internal_user_mgt_view"],
    )
    assert isinstance(role, Role)
    helper = make_user(world.root, "helper")
    role_assign(actor=None, role=role, org=world.root, user=helper)
    sign_in(client, helper)
    assert client.get(logs(world.root)).status_code == 403
    assert client.post(console_url(world.root, "logs/verify/")).status_code == 403
    home = client.get(console_url(world.root)).content.decode()
    assert ">Logs<" not in home


def test_nav_entry_for_administrators(admin_client: Client, world: World) -> None:
    home = admin_client.get(console_url(world.root)).content.decode()
    assert f'href="{console_url(world.root, "logs/")}"' in home and ">Logs<" in home


# --- the list -----------------------------------------------------------------------------


def test_default_window_is_the_last_15_minutes(admin_client: Client, world: World) -> None:
    old = record_at(timezone.now() - dt.timedelta(minutes=40), world, "old-probe")
    recent = record(world, "recent-probe")
    body = admin_client.get(logs(world.root)).content.decode()
    assert recent.seq in seqs(body) and old.seq not in seqs(body)
    assert "Recent probe" in body and "Old probe" not in body  # an unknown code, made into words
    # the form shows the window it used, in 24-hour ISO form
    assert re.search(r'name="from" value="\d{4}-\d\d-\d\d \d\d:\d\d"', body)
    everything = admin_client.get(logs(world.root, "from=")).content.decode()
    assert old.seq in seqs(everything)
    hour = (timezone.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert old.seq in seqs(admin_client.get(logs(world.root, f"from={hour}")).content.decode())


def test_to_bounds_the_window(admin_client: Client, world: World) -> None:
    old = record_at(timezone.now() - dt.timedelta(hours=3), world, "older-probe")
    two_hours_ago = (timezone.now() - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    body = admin_client.get(logs(world.root, f"from=&to={two_hours_ago}")).content.decode()
    assert seqs(body) == [old.seq]


def test_newest_first(admin_client: Client, world: World) -> None:
    body = admin_client.get(logs(world.root)).content.decode()
    listed = seqs(body)
    assert listed and listed == sorted(listed, reverse=True)


def test_filter_by_action_exact_and_prefix(admin_client: Client, world: World) -> None:
    a = record(world, "probe-one")
    b = record(world, "probe-two")
    record(world, "other")
    assert seqs(admin_client.get(logs(world.root, "action=probe-one")).content.decode()) == [a.seq]
    assert seqs(admin_client.get(logs(world.root, "action=probe-*")).content.decode()) == [b.seq, a.seq]
    assert seqs(admin_client.get(logs(world.root, "action=probe")).content.decode()) == []


def test_filter_by_initiator_username_or_id(admin_client: Client, world: World) -> None:
    mine = record(world, "probe", actor=world.eu_admin)
    record(world, "probe", actor=world.admin)
    by_name = seqs(admin_client.get(logs(world.root, "action=probe&initiator=eu-admin")).content.decode())
    by_id = seqs(
        admin_client.get(logs(world.root, f"action=probe&initiator={world.eu_admin.pk}")).content.decode()
    )
    assert by_name == by_id == [mine.seq]
    # usernames are compared as they are stored (lowercase)
    assert seqs(admin_client.get(logs(world.root, "action=probe&initiator=EU-Admin")).content.decode()) == [
        mine.seq
    ]


def test_filter_by_target_and_subject(admin_client: Client, world: World) -> None:
    app = record(world, "probe", target_type="application", target_id="42")
    person = record(world, "probe", subject=world.target, target_type="user", target_id=world.target.pk)
    assert seqs(
        admin_client.get(logs(world.root, "action=probe&target_type=application")).content.decode()
    ) == [app.seq]
    assert seqs(admin_client.get(logs(world.root, "action=probe&target=42")).content.decode()) == [app.seq]
    assert seqs(admin_client.get(logs(world.root, "action=probe&target=target")).content.decode()) == [
        person.seq
    ]
    assert seqs(
        admin_client.get(logs(world.root, f"action=probe&target={world.target.pk}")).content.decode()
    ) == [person.seq]


def test_filter_by_impersonator(admin_client: Client, world: World) -> None:
    via = record(
        world, "probe", actor=world.impersonator, impersonator=world.impersonator, subject=world.target
    )
    record(world, "probe", actor=world.impersonator)
    body = admin_client.get(logs(world.root, "action=probe&impersonator=impersonator")).content.decode()
    assert seqs(body) == [via.seq]
    assert "impersonator as target" in body
    by_id = admin_client.get(logs(world.root, f"action=probe&impersonator={world.impersonator.pk}"))
    assert seqs(by_id.content.decode()) == [via.seq]


def test_filter_by_outcome(admin_client: Client, world: World) -> None:
    failed = record(world, "probe", outcome=AuditEvent.Outcome.FAILURE)
    record(world, "probe")
    assert seqs(admin_client.get(logs(world.root, "action=probe&outcome=failure")).content.decode()) == [
        failed.seq
    ]
    assert len(seqs(admin_client.get(logs(world.root, "action=probe&outcome=success")).content.decode())) == 1


def test_subtree_isolation(client: Client, world: World) -> None:
    root_event = record(world, "probe", org=world.root)
    tenant_event = audit_record(tenant=world.root, action="probe", actor=None)  # no organization
    eu_event = record(world, "probe", org=world.eu)
    sales_event = record(world, "probe", org=world.sales)
    us_event = record(world, "probe", org=world.us)
    sign_in(client, world.eu_admin)
    eu_seen = seqs(client.get(logs(world.eu, "from=&action=probe")).content.decode())
    assert eu_seen == [sales_event.seq, eu_event.seq]
    sales_seen = seqs(client.get(logs(world.sales, "from=&action=probe")).content.decode())
    assert sales_seen == [sales_event.seq]
    # nothing of the parent, the sibling, or the tenant (org null) leaks into EU's Logs
    everything = seqs(client.get(logs(world.eu, "from=")).content.decode())
    assert not {root_event.seq, tenant_event.seq, us_event.seq} & set(everything)
    visible_orgs = set(
        AuditEvent.objects.filter(seq__in=everything, tenant=world.root).values_list("org_id", flat=True)
    )
    assert visible_orgs <= {world.eu.pk, world.sales.pk}
    for hidden in (root_event, tenant_event, us_event):
        assert client.get(console_url(world.eu, f"logs/{hidden.seq}/")).status_code == 404


def test_root_sees_the_whole_tenant(admin_client: Client, world: World) -> None:
    tenant_event = audit_record(tenant=world.root, action="probe", actor=None)
    us_event = record(world, "probe", org=world.us)
    body = admin_client.get(logs(world.root, "action=probe")).content.decode()
    assert seqs(body) == [us_event.seq, tenant_event.seq]
    assert "Acme US" in body and "Tenant" in body


def test_pages_with_older_links(admin_client: Client, world: World, settings: Any) -> None:
    settings.ACTAS_CONSOLE_PAGE_SIZE = 10
    made = [record(world, "page-probe").seq for _ in range(23)]
    first = admin_client.get(logs(world.root, "action=page-probe")).content.decode()
    pages = [seqs(first)]
    body = first
    while (
        link := re.search(r'href="([^"]*/logs/\?[^"]*before=\d+[^"]*)" rel="next">Older<', body)
    ) is not None:
        body = admin_client.get(link.group(1).replace("&amp;", "&")).content.decode()
        pages.append(seqs(body))
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [s for p in pages for s in p] == sorted(made, reverse=True)
    assert "Newest" in body


def test_query_count_does_not_grow_with_page_size(admin_client: Client, world: World, settings: Any) -> None:
    for org in (world.root, world.eu, world.us):
        record(world, "count-probe", org=org, subject=world.target, impersonator=world.impersonator)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(logs(world.root, "action=count-probe"))
        assert response.status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for i in range(40):
        record(world, "count-probe", org=[world.root, world.eu, world.sales, world.us][i % 4])
    settings.ACTAS_CONSOLE_PAGE_SIZE = 50
    assert count() == few


# --- detail -------------------------------------------------------------------------------


def test_detail_shows_every_field_and_escaped_data(admin_client: Client, world: World) -> None:
    event = record(
        world,
        "probe-detail",
        org=world.eu,
        subject=world.target,
        impersonator=world.impersonator,
        target_type="user",
        target_id=world.target.pk,
        client_id="pickup",
        scopes="openid profile",
        data={"reason": "<script>alert(1)</script>", "nested": {"n": 1}},
    )
    response = admin_client.get(console_url(world.root, f"logs/{event.seq}/"))
    assert response.status_code == 200
    body = response.content.decode()
    for text in (
        "probe-detail",
        str(world.eu.pk),
        "Acme EU",
        str(world.target.pk),
        str(world.impersonator.pk),
        "pickup",
        "openid profile",
        event.hash,
        event.prev_hash,
        "Hash matches",
    ):
        assert text in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "  &quot;nested&quot;: {\n    &quot;n&quot;: 1\n  }" in body  # pretty-printed


def test_detail_of_a_modified_event_says_so(admin_client: Client, world: World) -> None:
    event = record(world, "probe")
    with tampering():
        AuditEvent.objects.filter(pk=event.pk).update(action="nothing-to-see")
    body = admin_client.get(console_url(world.root, f"logs/{event.seq}/")).content.decode()
    assert "Hash does not match" in body


@pytest.mark.parametrize("seq", ["0", "999999", str(2**63), "99999999999999999999999999"])
def test_detail_of_missing_or_absurd_seq_is_404(admin_client: Client, world: World, seq: str) -> None:
    assert admin_client.get(console_url(world.root, f"logs/{seq}/")).status_code == 404


def test_detail_non_numeric_seq_is_404(admin_client: Client, world: World) -> None:
    assert admin_client.get(console_url(world.root, "logs/abc/")).status_code == 404


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "from=yesterday",
        "to=2026-13-40T99:99",
        "from=2026-01-02T00:00&to=2026-01-01T00:00",
        "action=a%00b",
        "initiator=%00",
        "action=" + "x" * 101,
        "target=" + "y" * 300,
        "outcome=maybe",
        "before=abc",
        "before=-5",
        "before=" + "9" * 30,
    ],
)
def test_bad_filters_are_form_errors(admin_client: Client, world: World, query: str) -> None:
    response = admin_client.get(logs(world.root, query))
    assert response.status_code == 400
    body = response.content.decode()
    assert 'class="form-errors"' in body and 'id="audit-events"' not in body
    for export in ("logs/export.csv", "logs/export.json"):
        assert admin_client.get(console_url(world.root, f"{export}?{query}")).status_code == 400


def test_timezone_offsets_and_seconds_are_accepted(admin_client: Client, world: World) -> None:
    event = record(world, "probe")
    since = (event.created_at - dt.timedelta(minutes=1)).astimezone(dt.timezone(dt.timedelta(hours=2)))
    query = "action=probe&from=" + since.isoformat(timespec="seconds").replace("+", "%2B")
    assert seqs(admin_client.get(logs(world.root, query)).content.decode()) == [event.seq]


def test_get_never_changes_anything(admin_client: Client, world: World) -> None:
    before = AuditChainHead.objects.get(tenant=world.root).seq
    for page in ("logs/", "logs/1/", "logs/export.csv", "logs/export.json", "logs/?from="):
        response = admin_client.get(console_url(world.root, page))
        assert response.status_code == 200
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert AuditChainHead.objects.get(tenant=world.root).seq == before
    assert admin_client.get(console_url(world.root, "logs/verify/")).status_code == 405


# --- exports ------------------------------------------------------------------------------


def _content(response: Any) -> str:
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_csv_export(admin_client: Client, world: World) -> None:
    first = record(world, "export-probe", subject=world.target, data={"k": "v"})
    second = record(world, "export-probe", target_type="note", target_id="=HYPERLINK(1)")
    record(world, "other-probe")
    response = admin_client.get(console_url(world.root, "logs/export.csv?action=export-probe"))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"] and ".csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_content(response))))
    assert [int(r["seq"]) for r in rows] == [first.seq, second.seq]  # chain order
    assert rows[0]["action"] == "export-probe"
    assert rows[0]["subject_id"] == str(world.target.pk)
    assert json.loads(rows[0]["data"]) == {"k": "v"}
    assert rows[0]["hash"] == first.hash and rows[0]["prev_hash"] == first.prev_hash
    assert rows[1]["target_id"] == "'=HYPERLINK(1)"  # never a live spreadsheet formula
    assert response["X-Actas-Export-Truncated"] == "false"


def test_csv_header(admin_client: Client, world: World) -> None:
    text = _content(admin_client.get(console_url(world.root, "logs/export.csv?action=nothing")))
    assert text.splitlines() == [
        "seq,created_at,org_id,action,outcome,actor_id,actor_label,impersonator_id,impersonator_label,"
        "subject_id,subject_label,target_type,target_id,client_id,scopes,request_id,ip,data,prev_hash,hash"
    ]


def test_json_export_can_be_reverified(admin_client: Client, world: World) -> None:
    record(world, "json-probe", data={"reason": "support ticket 7", "n": 1.5, "list": [1, "two"]})
    record(world, "json-probe", subject=world.target, impersonator=world.impersonator)
    response = admin_client.get(console_url(world.root, "logs/export.json?from="))
    assert response["Content-Type"].startswith("application/json")
    document = json.loads(_content(response))
    head = AuditChainHead.objects.get(tenant=world.root)
    assert document["chain_head"] == {"seq": head.seq, "hash": head.hash}
    assert document["truncated"] is False and document["tenant"] == "acme"
    events = document["events"]
    assert [e["seq"] for e in events] == list(range(1, head.seq + 1))
    # an auditor recomputes every hash and every link, and ends at the chain head
    prev = "0" * 64
    for e in events:
        assert e["prev_hash"] == prev
        assert event_hash(e["prev_hash"], e["fields"]) == e["hash"]
        assert e["fields"]["seq"] == e["seq"]
        prev = e["hash"]
    assert prev == head.hash


def test_json_export_of_a_child_org_is_its_subtree(client: Client, world: World) -> None:
    record(world, "probe", org=world.us)
    record(world, "probe", org=world.sales)
    sign_in(client, world.eu_admin)
    document = json.loads(_content(client.get(console_url(world.eu, "logs/export.json?from="))))
    org_ids = {e["fields"]["org_id"] for e in document["events"]}
    assert org_ids and org_ids <= {str(world.eu.pk), str(world.sales.pk)}
    for e in document["events"]:  # each row still re-verifies on its own
        assert event_hash(e["prev_hash"], e["fields"]) == e["hash"]


def test_export_is_capped(admin_client: Client, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import identity.selectors.audit_log as selectors

    monkeypatch.setattr(selectors, "EXPORT_MAX_ROWS", 3)
    made = [record(world, "cap-probe").seq for _ in range(5)]
    document = json.loads(
        _content(admin_client.get(console_url(world.root, "logs/export.json?action=cap-probe")))
    )
    assert document["truncated"] is True
    assert [e["seq"] for e in document["events"]] == made[-3:]  # the newest, in chain order
    csv_response = admin_client.get(console_url(world.root, "logs/export.csv?action=cap-probe"))
    assert len(_content(csv_response).splitlines()) == 4
    assert csv_response["X-Actas-Export-Truncated"] == "true"


def test_export_links_carry_the_filters(admin_client: Client, world: World) -> None:
    body = admin_client.get(logs(world.root, "action=probe-*&outcome=failure")).content.decode()
    link = re.search(r'href="([^"]*/logs/export\.json\?[^"]*)"', body)
    assert link is not None
    assert "action=probe-%2A" in link.group(1) and "outcome=failure" in link.group(1)


# --- verification -------------------------------------------------------------------------


def test_verification_status_and_verify_now(admin_client: Client, world: World) -> None:
    body = admin_client.get(logs(world.root)).content.decode()
    assert "Not verified yet" in body and "Verify now" in body
    response = admin_client.post(console_url(world.root, "logs/verify/"))
    assert response.status_code == 302 and response["Location"] == console_url(world.root, "logs/")
    verification = AuditEvent.objects.filter(tenant=world.root, action="audit-chain-verify").get()
    assert verification.outcome == "success" and verification.actor_id == world.admin.pk
    assert verification.data["ok"] is True and verification.data["events"] == verification.seq - 1
    page = admin_client.get(logs(world.root)).content.decode()
    assert "Intact" in page and "The audit chain is intact" in page
    record(world, "after")
    assert "1 event written, not yet verified" in admin_client.get(logs(world.root)).content.decode()


def test_verify_now_finds_a_broken_chain(admin_client: Client, world: World) -> None:
    victim = record(world, "probe")
    record(world, "probe")
    with tampering():
        AuditEvent.objects.filter(pk=victim.pk).update(action="nothing-to-see")
    admin_client.post(console_url(world.root, "logs/verify/"))
    verification = AuditEvent.objects.filter(tenant=world.root, action="audit-chain-verify").get()
    assert verification.outcome == "failure" and verification.data["broken_seq"] == victim.seq
    body = admin_client.get(logs(world.root)).content.decode()
    assert "Broken" in body and f"Event {victim.seq}: event {victim.seq} was modified" in body


def test_child_admin_verification_is_recorded_in_its_org(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.post(console_url(world.eu, "logs/verify/")).status_code == 302
    verification = AuditEvent.objects.get(tenant=world.root, action="audit-chain-verify")
    assert verification.org_id == world.eu.pk
    assert "Intact" in client.get(logs(world.eu)).content.decode()


def test_verify_needs_csrf(admin_client: Client, world: World) -> None:
    client = admin_client
    client.handler.enforce_csrf_checks = True
    assert client.post(console_url(world.root, "logs/verify/")).status_code == 403
    assert not AuditEvent.objects.filter(action="audit-chain-verify").exists()


def test_verify_now_is_not_rerun_within_a_minute(admin_client: Client, world: World) -> None:
    admin_client.post(console_url(world.root, "logs/verify/"))
    response = admin_client.post(console_url(world.root, "logs/verify/"), follow=True)
    assert "verified less than a minute ago" in response.content.decode()
    assert AuditEvent.objects.filter(tenant=world.root, action="audit-chain-verify").count() == 1
    later = timezone.now() + dt.timedelta(minutes=2)
    with mock.patch("identity.audit.verification.timezone.now", return_value=later):
        admin_client.post(console_url(world.root, "logs/verify/"))
    assert AuditEvent.objects.filter(tenant=world.root, action="audit-chain-verify").count() == 2


# --- the trail in words ---------------------------------------------------------------------


def _text(html: str) -> str:
    """What a reader sees: tags dropped, blocks apart, whitespace collapsed."""
    spaced = re.sub(r"<(/?(?:td|th|tr|li|ul|dt|dd|br|p|h\d|section|pre|time|a)\b)", r" <\1", html)
    spaced = spaced.replace('<span class="audit-event__sentence">', ' <span class="audit-event__sentence">')
    return " ".join(re.sub(r"<[^>]+>", "", spaced).split())


def _row_of(body: str, seq: int) -> str:
    """The table row of event ``seq``, as text."""
    table = body.split('id="audit-events"', 1)[1]
    for row in table.split("<tr>")[1:]:
        if f"/logs/{seq}/" in row:
            return _text(row)
    raise AssertionError(f"event {seq} is not listed")


def test_the_list_reads_as_sentences_with_what_changed(admin_client: Client, world: World) -> None:
    role = role_create(
        actor=world.admin, org=world.root, name="Night shift", audience_application=None, permissions=[]
    )
    assert isinstance(role, Role)
    role_assign(actor=world.admin, role=role, org=world.root, user=world.target)
    user_profile_update(
        actor=world.target,
        user=world.target,
        impersonator=world.impersonator,
        given_name="Changed",
        family_name=world.target.family_name,
        email=world.target.email,
    )
    body = admin_client.get(logs(world.root)).content.decode()
    assigned = AuditEvent.objects.get(action="role-assign", target_id=str(role.pk))
    row = _row_of(body, assigned.seq)
    assert "Role assigned" in row and "admin assigned the role Night shift to target." in row
    assert str(role.pk) not in row  # the role's name, not its id
    changed = AuditEvent.objects.get(action="user-profile-update")
    row = _row_of(body, changed.seq)
    assert "Profile updated while impersonating" in row
    assert "impersonator as target updated the profile of target." in row
    assert "Given name: from Target → to Changed" in row
    assert "user-profile-update" not in row  # the code is in the detail and the exports
    when = re.search(rf'/logs/{changed.seq}/">{changed.seq}</a></td>\s*<td class="nowrap">', body)
    assert when is not None  # the time stays on one line


def test_the_detail_has_the_sentence_the_changes_and_the_raw_code(admin_client: Client, world: World) -> None:
    user_set_flags(actor=world.admin, user=world.target, is_locked=True)
    event = AuditEvent.objects.get(action="user-status-change")
    body = admin_client.get(console_url(world.root, f"logs/{event.seq}/")).content.decode()
    text = _text(body)
    assert "<h1>Account status changed</h1>" in body
    assert "admin changed the account status of target." in text
    assert "What changed Locked: from No → to Yes" in text
    assert "<code>user-status-change</code>" in body  # the raw code stays
    assert "Initiator admin Actor admin" in text


def test_the_api_call_and_its_change_show_the_same_initiator(admin_client: Client, world: World) -> None:
    with context.bound(context.RequestContext(request_id="req-logs-000001")):
        change = audit_record(
            org=world.root,
            action="user-profile-update",
            actor=world.target,
            impersonator=world.impersonator,
            subject=world.target,
            data={"changes": {"family_name": {"from": "", "to": "Smith"}}},
        )
        call = audit_record(
            org=world.root,
            action="resource-modification-via-impersonation",
            actor=world.impersonator,
            impersonator=world.impersonator,
            subject=world.target,
            target_type="api-resource",
            target_id="/t/acme/scim2/Me",
            data={"httpMethod": "PATCH", "ResourcePath": "/t/acme/scim2/Me", "status": 200},
        )
    body = admin_client.get(logs(world.root)).content.decode()
    assert "impersonator as target" in _row_of(body, change.seq).split("Success", 1)[1]
    assert call.seq not in seqs(body)  # one change, one entry
    body = admin_client.get(logs(world.root, "action=resource-*")).content.decode()
    assert "impersonator as target" in _row_of(body, call.seq).split("Success", 1)[1]
    assert "impersonator as target changed /t/acme/scim2/Me (PATCH)." in _row_of(body, call.seq)


def test_the_action_filter_suggests_every_code_with_its_label(admin_client: Client, world: World) -> None:
    body = admin_client.get(logs(world.root)).content.decode()
    assert 'list="audit-actions"' in body
    assert '<option value="user-profile-update">Profile updated</option>' in body


# --- the time window: 24-hour ISO ------------------------------------------------------------


def test_window_fields_are_24_hour_text_inputs(admin_client: Client, world: World) -> None:
    body = admin_client.get(logs(world.root, "from=2026-12-07T14:05&to=2026-12-07+18:30")).content.decode()
    assert 'type="datetime-local"' not in body
    assert re.search(
        r'<input type="text" name="from" value="2026-12-07 14:05"[^>]*placeholder="YYYY-MM-DD HH:MM"', body
    )
    assert 'name="to" value="2026-12-07 18:30"' in body
    assert "PM" not in body.split('name="from"', 1)[1].split(">", 1)[0]


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        ("{at:%Y-%m-%d %H:%M}", True),  # as the field shows it
        ("{at:%Y-%m-%dT%H:%M}", True),  # as links and older bookmarks have it
        ("{at:%Y-%m-%d %H:%M:%S}", True),
        ("{later:%Y-%m-%d %H:%M}", False),
    ],
)
def test_window_times_are_read_in_24_hour_utc(
    admin_client: Client, world: World, value: str, inside: bool
) -> None:
    at = (timezone.now() - dt.timedelta(hours=20)).astimezone(dt.UTC).replace(second=0, microsecond=0)
    event = record_at(at + dt.timedelta(seconds=30), world, "clock-probe")
    since = value.format(at=at, later=at + dt.timedelta(minutes=1))
    listed = seqs(admin_client.get(logs(world.root, f"action=clock-probe&from={since}")).content.decode())
    assert (event.seq in listed) is inside


@pytest.mark.parametrize("value", ["2026-12-07 2:05 PM", "07/12/2026 14:05", "2026-12-07 25:00", "14:05"])
def test_other_time_forms_are_form_errors(admin_client: Client, world: World, value: str) -> None:
    response = admin_client.get(logs(world.root, urlencode({"from": value})))
    assert response.status_code == 400
    assert "Enter a time as YYYY-MM-DD HH:MM in 24-hour UTC time" in response.content.decode()


# --- counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("events", "said"), [(1, "1 event verified"), (7, "7 events verified")])
def test_verify_now_counts_in_words(
    admin_client: Client, world: World, monkeypatch: pytest.MonkeyPatch, events: int, said: str
) -> None:
    import identity.console.logs as views
    from identity.audit.services import ChainReport

    report = ChainReport(tenant_handle="acme", ok=True, events=events)
    monkeypatch.setattr(views, "audit_chain_verify", lambda **_: report)
    page = admin_client.post(console_url(world.root, "logs/verify/"), follow=True).content.decode()
    assert f"The audit chain is intact: {said}." in page


# --- the navigation ---------------------------------------------------------------------------


def _nav(body: str) -> str:
    return body.split('aria-label="Console sections"', 1)[1].split("</nav>", 1)[0]


def test_the_navigation_is_grouped_and_marks_the_current_page(admin_client: Client, world: World) -> None:
    nav = _nav(admin_client.get(logs(world.root)).content.decode())
    headings = re.findall(r'class="console-nav__heading"[^>]*>([^<]+)<', nav)
    assert headings == ["User management", "Applications", "Settings"]
    links = re.findall(r'<a href="[^"]*"(?: aria-current="page")?>([^<]+)</a>', nav)
    assert links == [
        "Overview",
        "Users",
        "Roles",
        "Impersonations",
        "Organizations",
        "Applications",
        "API Resources",
        "Logs",
        "Console Settings",
        "Login &amp; Registration",
        "Branding",
        "Email Templates",
    ]
    assert re.findall(r'aria-current="page">([^<]+)<', nav) == ["Logs"]
    users = admin_client.get(console_url(world.root, "users/")).content.decode()
    assert re.findall(r'aria-current="page">([^<]+)<', _nav(users)) == ["Users"]


def test_a_group_without_links_is_not_shown(client: Client, world: World) -> None:
    role = role_create(
        actor=None,
        org=world.root,
        name="Log readers",
        audience_application=world.system.console,
        permissions=["internal_audit_view"],
    )
    assert isinstance(role, Role)
    reader = make_user(world.root, "reader")
    role_assign(actor=None, role=role, org=world.root, user=reader)
    sign_in(client, reader)
    nav = _nav(client.get(logs(world.root)).content.decode())
    assert re.findall(r'class="console-nav__heading"[^>]*>([^<]+)<', nav) == ["User management"]
    assert ">Impersonations<" in nav and ">Logs<" in nav
    assert ">Users<" not in nav and ">Settings<" not in nav and ">Applications<" not in nav


@pytest.mark.parametrize("value", ["0001-01-01T00:00+01:00", "9999-12-31 23:59-01:00"])
def test_a_window_time_out_of_range_is_a_field_error_not_a_crash(
    admin_client: Client, world: World, value: str
) -> None:
    answer = admin_client.get(console_url(world.root, "logs/"), {"from": value})
    assert answer.status_code in (200, 400)
    assert answer.context["form"].errors.get("from"), answer.context["form"].errors


def test_an_api_call_is_one_entry_with_the_change_it_made(admin_client: Client, world: World) -> None:
    """A change made with an impersonated token records the change and the call in one
    request: Logs lists the change once; a call that recorded nothing else stays, and asking
    for the calls by name lists them all."""
    target = world.target
    with context.bound(context.RequestContext(request_id="req-profile-0001")):
        change = record(
            world, "user-profile-update", impersonator=world.admin, subject=target, data={"changes": {}}
        )
        folded = record(
            world, "resource-modification-via-impersonation", impersonator=world.admin, subject=target
        )
    with context.bound(context.RequestContext(request_id="req-refused-0002")):
        alone = record(
            world, "resource-modification-via-impersonation", impersonator=world.admin, subject=target
        )
    listed = seqs(admin_client.get(logs(world.root)).content.decode())
    assert change.seq in listed and alone.seq in listed
    assert folded.seq not in listed
    by_name = seqs(
        admin_client.get(logs(world.root, "action=resource-modification-via-impersonation")).content.decode()
    )
    assert by_name == [alone.seq, folded.seq]
