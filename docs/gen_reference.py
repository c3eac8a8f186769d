"""Write docs/configuration.md from the JSON Schema the package ships, so the reference and the
validation cannot drift (tests/test_docs.py fails when the file is stale or a key is undocumented).

    python docs/gen_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "pytest_smoke" / "schema" / "smoke-config.schema.json"
OUTPUT = ROOT / "docs" / "configuration.md"

INTRO = """# Configuration reference

Generated from the JSON Schema the package ships
(`pytest_smoke/schema/smoke-config.schema.json`, also usable by editors: add
`"$schema"` set to that file's path in your environment, printed by
`python3 -c "import pytest_smoke.schema as s; print(s.path())"`).
The same schema validates every config before the first request, so what is written here is what
the plugin accepts. `${VAR}` and `${VAR:-default}` are replaced from the environment before
validation; `$$` is a literal `$`.
"""


def resolve(node: Any, schema: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        target = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return {**resolve(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def type_of(node: Any, schema: dict[str, Any]) -> str:
    node = resolve(node, schema)
    if not isinstance(node, dict):
        return "any"
    if "enum" in node:
        return ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(type_of(sub, schema) for sub in node.get("oneOf", node.get("anyOf")))
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {type_of(node.get('items', {}), schema)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
        return f"map of {type_of(node['additionalProperties'], schema)}"
    bounds = []
    if "minimum" in node:
        bounds.append(f">= {node['minimum']}")
    if "exclusiveMinimum" in node:
        bounds.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        bounds.append(f"<= {node['maximum']}")
    return (kind or "any") + (f" ({', '.join(bounds)})" if bounds else "")


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(properties: dict[str, Any], required: list[str], schema: dict[str, Any]) -> Iterator[str]:
    yield "| Key | Type | Default | Meaning |"
    yield "| --- | --- | --- | --- |"
    for key, raw in properties.items():
        if raw is True:
            continue
        node = resolve(raw, schema)
        default = "required" if key in required else (f"`{json.dumps(node['default'])}`" if "default" in node else "—")
        yield f"| `{key}` | {cell(type_of(raw, schema))} | {default} | {cell(node.get('description', ''))} |"


def section(title: str, node: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    node = resolve(node, schema)
    yield f"## {title}"
    yield ""
    if node.get("description"):
        yield node["description"]
        yield ""
    if node.get("properties"):
        yield from table(node["properties"], node.get("required", []), schema)
        yield ""
    for branch in node.get("allOf", []):
        kind = branch.get("if", {}).get("properties", {}).get("type", {}).get("const")
        then = branch.get("then", {})
        if kind and then.get("properties"):
            yield f"### `type: {kind}`"
            yield ""
            own = {k: v for k, v in then["properties"].items() if v is not True and k not in node.get("properties", {})}
            yield from table(own, [r for r in then.get("required", []) if r != "type"], schema)
            yield ""


def render(schema: dict[str, Any]) -> str:
    lines = [INTRO, "## Top level", ""]
    lines += table(schema["properties"], schema.get("required", []), schema)
    lines.append("")
    sections = [
        ("`health_checks[]`", schema["$defs"]["health_check"]),
        ("`expect` (health checks, http dependencies, steps)", schema["$defs"]["expect"]),
        ("`dependency_checks[]`", schema["$defs"]["dependency_check"]),
        ("`critical_paths[]`", schema["$defs"]["critical_path"]),
        ("Critical path steps (`steps[]`, `cleanup[]`)", schema["$defs"]["step"]),
        ("`metric_checks[]`", schema["$defs"]["metric_check"]),
        ("`auto_rollback`", schema["$defs"]["auto_rollback"]),
        ("`rollback_strategy`", schema["$defs"]["rollback_strategy"]),
        ("`notifications.NAME`", schema["$defs"]["notification"]),
        ("`monitoring`", schema["properties"]["monitoring"]),
        ("`monitoring.pushgateway`", schema["properties"]["monitoring"]["properties"]["pushgateway"]),
        ("`wait_for_rollout`", schema["properties"]["wait_for_rollout"]),
        (
            "`environments.NAME`",
            {
                "description": "Deep-merged over the top level by --smoke-env NAME (maps merge, lists replace); "
                "every environment is validated as a whole config."
            },
        ),
    ]
    for title, node in sections:
        lines += section(title, node, schema)
    return "\n".join(lines).rstrip("\n") + "\n"


CHANGELOG = ROOT / "CHANGELOG.md"
CHANGELOG_PAGE = ROOT / "docs" / "changelog.md"


def main() -> int:
    """Write the generated pages (the reference from the schema, the changelog page from
    CHANGELOG.md); with --check, exit 1 when either is stale instead."""
    pages = {
        OUTPUT: render(json.loads(SCHEMA.read_text(encoding="utf-8"))),
        CHANGELOG_PAGE: CHANGELOG.read_text(encoding="utf-8"),
    }
    if "--check" in sys.argv:
        return (
            0 if all(path.exists() and path.read_text(encoding="utf-8") == text for path, text in pages.items()) else 1
        )
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
