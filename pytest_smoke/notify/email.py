"""E-mail over SMTP (STARTTLS and AUTH when configured), plain text and HTML."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Mapping

from ..report.document import headline
from ..report.markdown import render
from ..report.shape import ReportDocument

TIMEOUT_SECONDS = 10
MAX_REPLY_BYTES = 64 * 1024  # an SMTP reply is a few lines; smtplib reads continuation lines without end


class _CappedReader:
    """The server's side of the connection, read at most ``limit`` bytes per reply."""

    def __init__(self, raw: Any, limit: int):
        self._raw, self._limit, self.left = raw, limit, limit

    def readline(self, size: int = -1) -> bytes:
        line: bytes = self._raw.readline(size)
        self.left -= len(line)
        if self.left < 0:
            raise smtplib.SMTPResponseException(500, f"reply over {self._limit // 1024} KiB: not read further".encode())
        return line

    def close(self) -> None:
        self._raw.close()


class BoundedSMTP(smtplib.SMTP):
    """smtplib's client, reading at most MAX_REPLY_BYTES of any one reply (a server streaming
    continuation lines forever would otherwise fill the memory of an abandoned thread)."""

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = _CappedReader(self.sock.makefile("rb"), MAX_REPLY_BYTES)
        if isinstance(self.file, _CappedReader):
            self.file.left = MAX_REPLY_BYTES
        return super().getreply()


def message(document: ReportDocument, channel: Mapping[str, Any], event: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = f"{channel.get('subject_prefix', '[smoke]')} {headline(document)}"
    mail["From"] = channel["from"]
    mail["To"] = ", ".join(channel["to"])
    text = render(document)
    mail.set_content(text)
    mail.add_alternative(
        f"<html><body><h2>{html.escape(headline(document))}</h2><pre>{html.escape(text)}</pre></body></html>",
        subtype="html",
    )
    return mail


def send(document: ReportDocument, channel: Mapping[str, Any], event: str) -> str:
    port = int(channel.get("smtp_port", 587))
    with BoundedSMTP(channel["smtp_host"], port, timeout=TIMEOUT_SECONDS) as smtp:
        if channel.get("starttls", True):
            context = ssl.create_default_context(cafile=channel.get("ca_bundle"))
            smtp.starttls(context=context)
        if channel.get("username"):
            smtp.login(channel["username"], channel.get("password", ""))
        smtp.send_message(message(document, channel, event))
    return f"mailed {len(channel['to'])} recipient(s)"
