"""Allure's ``environment.properties``: the verdict on the report's front page, from the document."""

from __future__ import annotations

from pathlib import Path

from .document import headline
from .shape import ReportDocument


def write_environment(document: ReportDocument, directory: str | Path) -> None:
    """The smoke entries replace their own earlier values and keep everyone else's."""
    directory = Path(directory)
    entries = {
        "smoke.verdict": headline(document),
        "smoke.decision": str(document["decision"]["reason"]),
        "smoke.exit_status": str(document.get("exit_status")),
    }
    path = directory / "environment.properties"
    kept = []
    if path.exists():
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.partition("=")[0].strip() not in entries
        ]
    directory.mkdir(parents=True, exist_ok=True)
    lines = [*kept, *(f"{key}={_properties_escape(value)}" for key, value in entries.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _properties_escape(value: str) -> str:
    # Java properties: one line each; anything but printable ASCII as \uXXXX (controls included).
    text = value.replace("\\", "\\\\")
    return "".join(ch if 32 <= ord(ch) < 127 else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else "?" for ch in text)
