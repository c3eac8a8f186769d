"""Slack incoming webhook, with blocks."""

from __future__ import annotations

from typing import Any, Mapping

from ..report.document import headline
from ..report.shape import ReportDocument
from .http_post import ChannelError, post_json


def escape(text: Any) -> str:
    """Slack's mrkdwn control characters: a service's text never pings @channel or shows a link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(document: ReportDocument, event: str) -> dict[str, Any]:
    title = headline(document)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Config*\n`{escape(document['config'])}`"},
                {
                    "type": "mrkdwn",
                    "text": f"*Verdict*\n{document['verdict']['critical']} critical, "
                    f"{document['verdict']['warnings']} warning(s)",
                },
            ],
        },
    ]
    for check in [c for c in document["checks"] if c["severity"] in ("critical", "warning")][:10]:
        issue = check["remediation"]["issue"] if "remediation" in check else ""
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*{escape(check['name'])}* ({check['severity']}): {escape(check['reason'])}\n"
                    f"_Issue:_ {escape(issue)}",
                },
            }
        )
    for ticket in document.get("incidents") or []:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Incident ticket created:* {escape(ticket)}"}}
        )
    rollback = document.get("rollback")
    if rollback:
        text = f"*Rollback:* {escape(rollback['message'])}"
        if rollback.get("manual_command"):
            text += f"\n`{rollback['manual_command']}`"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"event `{event}` · re-run: `{escape(document['rerun_command'])}`"}
            ],
        }
    )
    return {"text": title, "blocks": blocks}


def send(document: ReportDocument, channel: Mapping[str, Any], event: str) -> str:
    response = post_json(channel["webhook_url"], payload(document, event), {}, "Slack")
    if response.status >= 300:
        raise ChannelError(f"Slack answered {response.status}")
    return "posted to Slack"
