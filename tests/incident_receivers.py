"""Local receivers that follow the documented request and response shapes of PagerDuty's Events
API v2, Opsgenie's Alert API v2 and a generic ticketing webhook, error answers included (400 or 422
with an error body, 401, 429 with Retry-After). Each records what it received."""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from servers import LocalHTTPServer

PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


class Receiver:
    """``answers``: a list of (status, headers, body) to give first, before the normal answer."""

    def __init__(self):
        self.received: list[dict] = []
        self.answers: list[tuple[int, dict, object]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                parts = urlsplit(self.path)
                request = {
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": dict(self.headers),
                    "body": body,
                }
                with outer.lock:
                    outer.received.append(request)
                    queued = outer.answers.pop(0) if outer.answers else None
                status, headers, answer = queued or outer.answer(request)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = LocalHTTPServer(Handler)
        self.url = self.http.url

    def answer(self, request: dict) -> tuple[int, dict, object]:
        raise NotImplementedError

    def stop(self) -> None:
        self.http.stop()


class PagerDuty(Receiver):
    """POST /v2/enqueue, validated as the Events API v2 does."""

    def answer(self, request):
        event = request["body"] if isinstance(request["body"], dict) else {}
        errors = []
        if request["path"] != "/v2/enqueue":
            return 404, {}, {"status": "not found"}
        if len(str(event.get("routing_key", ""))) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            errors.append(
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"
            )
        if event.get("event_action") == "trigger":
            payload = event.get("payload") or {}
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    errors.append(f"'payload.{field}' is missing or blank")
            if payload.get("severity") and payload["severity"] not in PAGERDUTY_SEVERITIES:
                errors.append("'payload.severity' is invalid (must be one of: critical, error, warning or info)")
            if len(str(payload.get("summary", ""))) > 1024:
                errors.append("'payload.summary' is too long")
        if errors:
            return 400, {}, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        key = event.get("dedup_key") or uuid.uuid4().hex
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": key}


class Opsgenie(Receiver):
    """POST /v2/alerts and POST /v2/alerts/{alias}/close?identifierType=alias, as the Alert API v2."""

    def answer(self, request):
        request_id = str(uuid.uuid4())
        key = request["headers"].get("Authorization", "")
        if not re.fullmatch(r"GenieKey [0-9a-f-]{36}", key):
            # Opsgenie's real message does not echo the key; this one does, to test the redaction.
            return 401, {}, {"message": f"Key format is not valid! ({key})", "took": 0.0, "requestId": request_id}
        body = request["body"] if isinstance(request["body"], dict) else {}
        if request["path"] == "/v2/alerts":
            if not body.get("message"):
                return (
                    422,
                    {},
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": {"message": "Message can not be empty."},
                        "took": 0.0,
                        "requestId": request_id,
                    },
                )
            if len(body["message"]) > 130:
                return (
                    422,
                    {},
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": {"message": "Message can not be longer than 130 characters."},
                        "took": 0.0,
                        "requestId": request_id,
                    },
                )
            return 202, {}, {"result": "Request will be processed", "took": 0.302, "requestId": request_id}
        if request["path"].startswith("/v2/alerts/") and request["path"].endswith("/close"):
            if request["query"].get("identifierType") != ["alias"]:
                return 422, {}, {"message": "identifierType must be alias here", "took": 0.0, "requestId": request_id}
            return 202, {}, {"result": "Request will be processed", "took": 0.107, "requestId": request_id}
        return 404, {}, {"message": "Not found", "took": 0.0, "requestId": request_id}


class Ticketing(Receiver):
    """A ticketing service: answers ``{"ticket": {"id": "INC-2026-0542"}}`` to the JSON report."""

    def __init__(self, ticket: str = "INC-2026-0542"):
        super().__init__()
        self.ticket = ticket

    def answer(self, request):
        return 201, {}, {"ticket": {"id": self.ticket, "url": f"https://tickets.example/{self.ticket}"}}
