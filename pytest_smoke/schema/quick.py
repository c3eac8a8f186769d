"""A yes-or-no answer to "does this config fit the schema?", without importing jsonschema.

jsonschema and the libraries it needs take longer to import than a whole small smoke run, and it
checks a thousand similar entries one keyword object at a time. Most configs are valid, so the
loader asks this module first and calls jsonschema only to explain a "no".

The schema is compiled once into plain Python functions. Only the keywords the shipped schema
uses are known here; anything else, in the schema or in the document (a keyword added later, a
YAML date, a key that is not a string), raises :class:`Unsure`, and jsonschema decides. So this
module may send a valid document to jsonschema, but it never passes one jsonschema rejects:
tests/test_config_fuzz.py compares the two answers on random documents.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

Check = Callable[[Any], bool]

# Keywords that only describe: they never make a document invalid.
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated"})


class Unsure(Exception):
    """This module cannot answer exactly: let jsonschema decide."""


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """A function answering True (valid) or False (invalid) for a document, or raising Unsure."""
    return _Compiler(schema.get("$defs", {})).node(schema)


def _json_type(value: Any) -> str:
    """The JSON type of a value as jsonschema's Draft 2020-12 type checker sees it."""
    kind = type(value)
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    if value is None:
        return "null"
    raise Unsure(f"a value of type {kind.__name__}")


def _has_type(value: Any, name: str) -> bool:
    actual = _json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":
        # jsonschema: 1.0 is an integer; a boolean is never a number.
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == name


def _same(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema's const and enum compare: 1 == 1.0, but true is not 1."""
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        raise Unsure("a compound const or enum")
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return bool(one == two)


class _Compiler:
    def __init__(self, definitions: Mapping[str, Any]):
        self.definitions = definitions
        self.compiled: dict[str, Check] = {}

    def ref(self, ref: str) -> Check:
        if not ref.startswith("#/$defs/") or ref[len("#/$defs/") :] not in self.definitions:
            raise Unsure(f"the reference {ref}")
        name = ref[len("#/$defs/") :]
        if name not in self.compiled:
            # Bound late: a definition may refer to itself.
            self.compiled[name] = lambda value: self.compiled[name](value)
            self.compiled[name] = self.node(self.definitions[name])
        return self.compiled[name]

    def node(self, schema: Any) -> Check:
        if schema is True:
            return lambda value: True
        if schema is False:
            return lambda value: False
        if not isinstance(schema, dict):
            raise Unsure("a schema that is not an object")
        compiled = [self.keyword(key, value, schema) for key, value in schema.items() if key not in ANNOTATIONS]
        checks = [check for check in compiled if check is not None]

        def all_hold(value: Any) -> bool:
            for check in checks:
                if not check(value):
                    return False
            return True

        return all_hold

    def keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        if key in ("$defs", "then", "else"):  # "then" and "else" are checked with "if"
            return None
        if key == "$ref":
            return self.ref(arg)
        family = _KEYWORD_FAMILIES.get(key)
        if family is None:
            raise Unsure(f"the keyword {key}")
        return family(self, key, arg, schema)

    def value_keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        """type, const, enum, and the string keywords."""
        if key == "type":
            names = [arg] if isinstance(arg, str) else list(arg)
            return lambda value: any(_has_type(value, name) for name in names)
        if key == "const":
            return lambda value: _same(value, arg)
        if key == "enum":
            return lambda value: any(_same(value, option) for option in arg)
        if key in ("minLength", "maxLength"):
            at_least = key == "minLength"
            return lambda value: not isinstance(value, str) or (len(value) >= arg if at_least else len(value) <= arg)
        search = re.compile(arg).search  # pattern
        return lambda value: not isinstance(value, str) or search(value) is not None

    def number_keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        # Written as jsonschema tests for an error, so NaN compares the same way.
        breaks: Check = {
            "minimum": lambda number: bool(number < arg),
            "maximum": lambda number: bool(number > arg),
            "exclusiveMinimum": lambda number: bool(number <= arg),
            "exclusiveMaximum": lambda number: bool(number >= arg),
        }[key]
        return lambda value: not _has_type(value, "number") or not breaks(value)

    def object_keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        if key == "properties":
            return self.properties(arg, schema.get("additionalProperties", True))
        if key == "additionalProperties":
            if "patternProperties" in schema:
                raise Unsure("patternProperties")
            return None if "properties" in schema else self.properties({}, arg)
        if key == "required":
            return lambda value: not isinstance(value, dict) or all(name in value for name in arg)
        names_hold = self.node(arg)  # propertyNames
        return lambda value: not isinstance(value, dict) or all(names_hold(_string_key(name)) for name in value)

    def array_keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        if key == "items":
            if "prefixItems" in schema:
                raise Unsure("prefixItems")
            item_holds = self.node(arg)
            return lambda value: not isinstance(value, list) or all(item_holds(item) for item in value)
        if key == "minItems":
            return lambda value: not isinstance(value, list) or len(value) >= arg
        return None if not arg else _unique  # uniqueItems

    def logic_keyword(self, key: str, arg: Any, schema: Mapping[str, Any]) -> Check | None:
        """allOf, anyOf, oneOf, not, and if (with its then and else)."""
        if key in ("allOf", "anyOf", "oneOf"):
            branches = [self.node(branch) for branch in arg]
            if key == "allOf":
                return lambda value: all(branch(value) for branch in branches)
            if key == "anyOf":
                return lambda value: any(branch(value) for branch in branches)
            return lambda value: sum(1 for branch in branches if branch(value)) == 1
        if key == "not":
            negated = self.node(arg)
            return lambda value: not negated(value)
        condition = self.node(arg)  # if
        then = self.node(schema.get("then", True))
        otherwise = self.node(schema.get("else", True))
        return lambda value: then(value) if condition(value) else otherwise(value)

    def properties(self, declared: Mapping[str, Any], additional: Any) -> Check:
        holds = {name: self.node(sub) for name, sub in declared.items()}
        extra = self.node(additional)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for name, item in value.items():
                known = holds.get(_string_key(name))
                if not (known(item) if known is not None else extra(item)):
                    return False
            return True

        return check


# The keywords this module knows, by the method that compiles them.
_KEYWORD_FAMILIES: dict[str, Callable[[_Compiler, str, Any, Mapping[str, Any]], Check | None]] = {
    **dict.fromkeys(("type", "const", "enum", "minLength", "maxLength", "pattern"), _Compiler.value_keyword),
    **dict.fromkeys(("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"), _Compiler.number_keyword),
    **dict.fromkeys(("properties", "additionalProperties", "required", "propertyNames"), _Compiler.object_keyword),
    **dict.fromkeys(("items", "minItems", "uniqueItems"), _Compiler.array_keyword),
    **dict.fromkeys(("allOf", "anyOf", "oneOf", "not", "if"), _Compiler.logic_keyword),
}


def _string_key(name: Any) -> str:
    if type(name) is not str:
        raise Unsure("a key that is not a string")  # YAML allows 1: or true: as keys
    return name


def _unique(value: Any) -> bool:
    if not isinstance(value, list):
        return True
    if not all(type(item) is str for item in value):
        raise Unsure("uniqueItems over values that are not strings")
    return len(set(value)) == len(value)
