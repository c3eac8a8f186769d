"""E-mail over SMTP (STARTTLS and AUTH when configured), plain text and HTML."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Mapping

from ..report.document import headline
from ..report.markdown import render

TIMEOUT_SECONDS = 10


def message(document: Mapping[str, Any], channel: Mapping[str, Any], event: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = f"{channel.get('subject_prefix', '[smoke]')} {headline(document)}"
    mail["From"] = channel["from"]
    mail["To"] = ", ".join(channel["to"])
    text = render(dict(document))
    mail.set_content(text)
    mail.add_alternative(f"<html><body><h2>{html.escape(headline(document))}</h2><pre>{html.escape(text)}</pre></body></html>", subtype="html")
    return mail


def send(document: Mapping[str, Any], channel: Mapping[str, Any], event: str) -> str:
    port = int(channel.get("smtp_port", 587))
    with smtplib.SMTP(channel["smtp_host"], port, timeout=TIMEOUT_SECONDS) as smtp:
        if channel.get("starttls", True):
            context = ssl.create_default_context(cafile=channel.get("ca_bundle"))
            smtp.starttls(context=context)
        if channel.get("username"):
            smtp.login(channel["username"], channel.get("password", ""))
        smtp.send_message(message(document, channel, event))
    return f"mailed {len(channel['to'])} recipient(s)"
