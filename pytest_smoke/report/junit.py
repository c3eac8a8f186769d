"""``--smoke-junit PATH``: a JUnit file written with junit-xml, one suite per severity
(``critical``, ``warning``, ``passed``, and ``skipped`` when any check was not started), for CI
systems that display suites separately. It meets the Jenkins/Surefire schema that pytest's own
xunit2 file meets, and names each test case as pytest's file does (class name from the node id's
path, name from its last part), so two custom tests of one name in two files stay apart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .shape import CheckEntry, ReportDocument


def write(document: ReportDocument, path: str | Path) -> None:
    # Lazy (~8 ms): publish imports this module on every smoke run, and only --smoke-junit needs
    # junit-xml (preflight names it when missing).
    from junit_xml import TestCase, TestSuite, to_xml_report_string

    suites = []
    for severity in ("critical", "warning", "passed", "skipped"):
        cases = []
        for check in (c for c in document["checks"] if _suite_of(c) == severity):
            classname, name = junit_names(check["nodeid"])
            case = TestCase(
                name=name,
                classname=classname,
                elapsed_sec=round(check["duration_seconds"], 3),
                stdout=(check.get("facts") or {}).get("summary"),
            )
            _add_result(case, check, severity)
            cases.append(case)
        if cases or severity != "skipped":
            properties = {
                "severity": severity,
                "verdict": document["verdict"]["state"],
                "decision": document["decision"]["action"],
            }
            suites.append(TestSuite(severity, cases, properties=properties, timestamp=document["started_at"]))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(surefire(to_xml_report_string(suites, prettyprint=True, encoding="utf-8")), encoding="utf-8")


def _add_result(case: Any, check: CheckEntry, severity: str) -> None:
    """The check's failure, error or skip on its test case, with the reason and remediation (a pass has none)."""
    text = "\n".join(filter(None, [check["reason"], check.get("details") or ""]))
    fix = check.get("remediation")
    if fix:
        text += "\n\nIssue: " + fix["issue"] + "\n" + "\n".join(f"Next: {s}" for s in fix["steps"])
    if severity == "critical":
        case.add_failure_info(message=check["reason"], output=text, failure_type=check["failure_kind"] or "failed")
    elif severity == "warning" and check["status"] == "not_evaluated":
        case.add_error_info(message=check["reason"], output=text, error_type="not_evaluated")
    elif severity == "warning":
        case.add_failure_info(message=check["reason"], output=text, failure_type=check["failure_kind"] or "warning")
    elif severity == "skipped" and check["required"] and check["status"] == "not_run":
        # A required check cut off (-x, budget, crash): CI must not read it as a harmless skip.
        case.add_error_info(message=check["reason"], output=text, error_type="not_run")
    elif severity == "skipped":
        case.add_skipped_info(message=check["reason"] or "skipped")


def junit_names(nodeid: str) -> tuple[str, str]:
    """``(classname, name)`` for a node id, as pytest's ``--junitxml`` derives them:
    ``tests/test_x.py::TestA::test_b[1]`` -> ``("tests.test_x.TestA", "test_b[1]")``."""
    address, bracket, params = nodeid.partition("[")
    names = address.split("::")
    names[0] = names[0].replace("/", ".").removesuffix(".py")
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def surefire(xml: str) -> str:
    """What junit-xml writes beyond the Surefire schema: a ``disabled`` count, which the schema
    does not know, and float sums such as ``0.22419999999999998`` where it allows three decimals."""
    root = ET.fromstring(xml)
    for element in root.iter():
        element.attrib.pop("disabled", None)
        if "time" in element.attrib:
            element.set("time", f"{float(element.get('time') or 0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite_of(check: CheckEntry) -> str:
    """Checks that did not run (not run, not selected) go to the skipped suite."""
    return "skipped" if check["severity"] in ("not_run", "not_selected") else check["severity"]


def hoist_testcase_properties(path: str | Path) -> None:
    """Make pytest's own ``--junitxml`` file valid under ``junit_family=xunit2``.

    pytest writes ``user_properties`` (the smoke kind, severity, endpoint...) as ``<properties>``
    inside each ``<testcase>``, which the xunit2 schema forbids. Move them to the suite's
    ``<properties>``, named ``<testcase name>.<property>``, keeping every value.
    """
    target = Path(path)
    tree = ET.parse(target)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    changed = False
    for suite in suites:
        hoisted = []
        for case in suite.findall("testcase"):
            for props in case.findall("properties"):
                for prop in props.findall("property"):
                    hoisted.append((f"{case.get('name')}.{prop.get('name')}", prop.get("value", "")))
                case.remove(props)
                changed = True
        if hoisted:
            suite_props = suite.find("properties")
            if suite_props is None:
                suite_props = ET.Element("properties")
                suite.insert(0, suite_props)
            for name, value in hoisted:
                ET.SubElement(suite_props, "property", name=name, value=value)
    if changed:
        tree.write(target, encoding="utf-8", xml_declaration=True)
