"""The embedded default's mailer prints each email as a person reads it
(identity/notifications/console.py): links whole, text decoded, never quoted-printable."""

from __future__ import annotations

import io

from django.core.mail import EmailMultiAlternatives

from identity.notifications.console import ReadableConsoleBackend

LINK = "https://id.example.org/t/acme/myaccount/access/?before=" + "x" * 120


def test_links_and_accents_print_as_they_are() -> None:
    stream = io.StringIO()
    message = EmailMultiAlternatives(
        subject="Émile, someone accessed your account",
        body=f"Hello Émile,\n\nSee who and why: {LINK}\n",
        from_email="actas <no-reply@example.org>",
        to=["emile@example.test"],
        headers={"Message-ID": "<42@id.example.org>"},
    )
    message.attach_alternative(f'<p>See <a href="{LINK}">who and why</a></p>', "text/html")
    sent = ReadableConsoleBackend(stream=stream).send_messages([message])
    printed = stream.getvalue()
    assert sent == 1
    assert LINK in printed  # one unbroken line: it can be copied
    assert "Subject: Émile, someone accessed your account" in printed and "Hello Émile," in printed
    assert "Message-ID: <42@id.example.org>" in printed and "To: emile@example.test" in printed
    assert "=\n" not in printed and "quoted-printable" not in printed and "=C3=89" not in printed


def test_a_message_without_recipients_is_not_sent() -> None:
    stream = io.StringIO()
    assert (
        ReadableConsoleBackend(stream=stream).send_messages([EmailMultiAlternatives(subject="x", body="y")])
        == 0
    )
    assert stream.getvalue() == ""
