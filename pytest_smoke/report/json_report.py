"""``--smoke-report PATH``: the versioned JSON document for the monitoring dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping


def write(document: Mapping[str, Any], path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(target)  # a dashboard never reads half a report
