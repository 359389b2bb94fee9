"""The embedded default's mailer: each email printed to the console as a person reads it.

Django's console backend prints the MIME message, whose text part is quoted-printable: long
lines are split with ``=`` and the links in an email cannot be copied from the terminal. This
one prints the headers that matter and the plain-text body as it is.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

RULE = "-" * 79


class ReadableConsoleBackend(BaseEmailBackend):
    def __init__(self, *args: Any, stream: TextIO | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        with self._lock:
            for message in email_messages:
                if not message.recipients():
                    continue
                headers = message.message()
                lines = [
                    f"Message-ID: {headers['Message-ID']}",
                    f"Date: {headers['Date']}",
                    f"From: {message.from_email}",
                    f"To: {', '.join(message.to)}",
                ]
                if message.cc:
                    lines.append(f"Cc: {', '.join(message.cc)}")
                lines += [f"Subject: {message.subject}", "", str(message.body).rstrip(), RULE]
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
                sent += 1
        return sent
