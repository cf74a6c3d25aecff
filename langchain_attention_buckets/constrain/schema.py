"""The JSON-schema subset the grammars enforce exactly: refuse everything else up front.

xgrammar accepts some schema keywords without enforcing them; a grammar built from such
a schema could emit output the schema rejects. `prepare_schema` walks a schema (and
every subschema) and raises a ValueError naming the owner, the keyword and the path for
anything that would not be enforced; `compile_error` turns xgrammar's own compile
errors into the same kind of message.

Pure Python on plain dicts: imports nothing from the package and never xgrammar, so it
can be used and tested without it.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["check_schema", "compile_error", "prepare_schema", "schema_owner"]

# Validation keywords that xgrammar 0.2.8 accepts but does not enforce: a grammar built
# without them could emit output that the schema rejects, so they are refused up front.
_UNENFORCED = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "$dynamicRef",
        "$recursiveRef",
    }
)
_NUMERIC_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "unevaluatedItems",
    "additionalItems",
)
# Regex features xgrammar ignores (lookaround) or cannot express (backreferences).
_UNSUPPORTED_REGEX = re.compile(r"\(\?<?[=!]|\\[1-9]")
# For naming the keyword in xgrammar's own error messages; most specific first.
_KEYWORDS_IN_ERRORS = (
    "$ref",
    "$defs",
    "definitions",
    "prefixItems",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minimum",
    "maximum",
    "multipleOf",
    "required",
    "properties",
    "items",
    "pattern",
    "format",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "type",
)


def schema_owner(schema: Any) -> str:
    """How error messages name a response schema: by its title when it has one."""
    title = schema.get("title") if isinstance(schema, dict) else None
    return f"schema '{title}'" if title else "schema"


def prepare_schema(schema: Any, owner: str) -> dict:
    """The schema as a dict ready for xgrammar (`true` becomes `{}`).

    Raises:
        ValueError: the schema is `false`, malformed, or uses a construct the grammar
            would not enforce; the message names `owner`, the keyword and its path.
    """
    if schema is True:
        return {}
    if schema is False:
        raise ValueError(f"{owner}: the schema `false` admits no value")
    check_schema(schema, owner)
    return schema


def check_schema(schema: Any, owner: str = "schema") -> None:
    """Raise ValueError for anything in `schema` (or a subschema) that would not be enforced."""
    _check_node(schema, "#", schema, owner)


def compile_error(owner: str, err: Exception) -> ValueError:
    """Turn an xgrammar compile error into a ValueError naming the owner and keyword."""
    msg = (str(err).strip() or type(err).__name__).splitlines()[0]
    msg = re.sub(r"^\[[\d:]+\] \S+: ", "", msg)  # drop xgrammar's "[time] file.cc:line: "
    for kw in _KEYWORDS_IN_ERRORS:
        if re.search(rf"(?<![\w$]){re.escape(kw)}(?!\w)", msg):
            return ValueError(f"{owner}: xgrammar cannot compile the schema (keyword '{kw}'): {msg}")
    return ValueError(f"{owner}: xgrammar cannot compile the schema: {msg}")


def _schema_error(owner: str, keyword: str, path: str, why: str) -> ValueError:
    return ValueError(f"{owner}: cannot use JSON schema keyword '{keyword}' at {path}: {why}")


def _check_node(node: Any, path: str, root: Any, owner: str) -> None:
    """Check one schema node, then recurse into its subschemas."""
    if isinstance(node, bool):
        return
    if not isinstance(node, dict):
        raise ValueError(f"{owner}: the schema at {path} must be an object or a boolean, got {node!r}")
    for kw in node:
        if kw in _UNENFORCED:
            raise _schema_error(owner, kw, path, "xgrammar does not enforce it, so outputs could violate the schema")
    for kw in _SUBSCHEMA_MAPS:
        _typed(node, kw, dict, path, owner)
    for kw in (*_SUBSCHEMA_LISTS, "required"):
        _typed(node, kw, list, path, owner)
    if len(node.get("allOf", ())) > 1:
        raise _schema_error(owner, "allOf", path, "only a single-branch allOf is supported; merge the branches")
    _check_ref(node, path, root, owner)
    _check_numbers(node, path, owner)
    _check_strings_and_arrays(node, path, owner)
    if "oneOf" in node:
        _check_one_of(node["oneOf"], path, root, owner)
    for kw in _SUBSCHEMA_MAPS:
        for name, sub in _typed(node, kw, dict, path, owner).items():
            _check_node(sub, f"{path}/{kw}/{name}", root, owner)
    for kw in _SUBSCHEMA_LISTS:
        for i, sub in enumerate(_typed(node, kw, list, path, owner)):
            _check_node(sub, f"{path}/{kw}/{i}", root, owner)
    for kw in _SUBSCHEMAS:
        if kw in node:
            _check_node(node[kw], f"{path}/{kw}", root, owner)


def _check_ref(node: dict, path: str, root: Any, owner: str) -> None:
    ref = node.get("$ref")
    if ref is None:
        return
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise _schema_error(owner, "$ref", path, f"only local references ('#/$defs/...') are supported, got {ref!r}")
    if _resolve(root, ref) is None:
        raise _schema_error(owner, "$ref", path, f"cannot resolve {ref!r}")


def _check_numbers(node: dict, path: str, owner: str) -> None:
    for kw in _NUMERIC_BOUNDS:
        if kw in node and (isinstance(node[kw], bool) or not isinstance(node[kw], (int, float))):
            raise _schema_error(owner, kw, path, f"must be a number, got {node[kw]!r}")
    if "multipleOf" in node:
        types = node.get("type")
        types = [types] if isinstance(types, str) else types or []
        if "integer" not in types or "number" in types or not float(node["multipleOf"]).is_integer():
            raise _schema_error(
                owner, "multipleOf", path, "enforced only on integer schemas with a whole-number divisor"
            )


def _check_strings_and_arrays(node: dict, path: str, owner: str) -> None:
    if isinstance(node.get("items"), list):
        raise _schema_error(owner, "items", path, "the tuple form (a list) is not supported; use prefixItems")
    patterns = [node.get("pattern")] + list(node.get("patternProperties", {}))
    for pat in patterns:
        if isinstance(pat, str) and _UNSUPPORTED_REGEX.search(pat):
            raise _schema_error(owner, "pattern", path, f"lookaround and backreferences are not supported: {pat!r}")
    required = node.get("required", [])
    if required and "patternProperties" not in node:
        declared = node.get("properties", {})
        missing = [name for name in required if name not in declared]
        if missing:
            raise _schema_error(owner, "required", path, f"names {missing} that are not declared in properties")


def _typed(node: dict, kw: str, kind: type, path: str, owner: str) -> Any:
    value = node.get(kw, kind())
    if not isinstance(value, kind):
        raise _schema_error(owner, kw, path, f"must be {'an object' if kind is dict else 'a list'}, got {value!r}")
    return value


def _resolve(root: Any, ref: str, depth: int = 0) -> Any:
    """The schema a local `$ref` points to (following chains), or None."""
    node = root
    for part in ref.lstrip("#").split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 16:
        return _resolve(root, node["$ref"], depth + 1)
    return node


# xgrammar enforces oneOf exactly only when it can prove the branches disjoint and
# otherwise falls back to anyOf (an output could then match two branches). Require
# disjointness we can see: different types, different const/enum values, or a required
# property whose const/enum values differ (a discriminator, as pydantic emits).


def _check_one_of(branches: list, path: str, root: Any, owner: str) -> None:
    sigs = [_signature(b, root) for b in branches]
    for i in range(len(branches)):
        for j in range(i + 1, len(branches)):
            if not _disjoint(sigs[i], sigs[j], branches[i], branches[j], root):
                raise _schema_error(
                    owner,
                    "oneOf",
                    path,
                    f"branches {i} and {j} may overlap, which cannot be enforced exactly; use anyOf, "
                    "or make the branches differ by type or by a required const/enum property",
                )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True)


def _signature(schema: Any, root: Any) -> tuple[frozenset | None, frozenset | None]:
    """(JSON types, canonical const/enum values) a schema admits; None where unknown."""
    if isinstance(schema, dict) and "$ref" in schema:
        schema = _resolve(root, schema["$ref"])
    if not isinstance(schema, dict):
        return None, None
    if "const" in schema:
        return frozenset({_json_type(schema["const"])}), frozenset({_canonical(schema["const"])})
    if "enum" in schema:
        values = schema["enum"]
        return frozenset(_json_type(v) for v in values), frozenset(_canonical(v) for v in values)
    types = schema.get("type")
    if types is not None:
        return frozenset([types] if isinstance(types, str) else types), None
    return None, None


def _types_overlap(a: frozenset, b: frozenset) -> bool:
    def widen(t: frozenset) -> frozenset:
        return t | {"number"} if "integer" in t else t | {"integer"} if "number" in t else t

    return bool(widen(a) & widen(b))


def _disjoint(sa: tuple, sb: tuple, a: Any, b: Any, root: Any) -> bool:
    (ta, va), (tb, vb) = sa, sb
    if va is not None and vb is not None:
        return not (va & vb)
    if ta is not None and tb is not None and not _types_overlap(ta, tb):
        return True
    a, b = (_resolve(root, x["$ref"]) if isinstance(x, dict) and "$ref" in x else x for x in (a, b))
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return False
    shared = set(a.get("required", ())) & set(b.get("required", ()))
    for name in shared:
        pa = _signature(a.get("properties", {}).get(name), root)[1]
        pb = _signature(b.get("properties", {}).get(name), root)[1]
        if pa is not None and pb is not None and not (pa & pb):
            return True
    return False
