"""ES5, and nothing later: the check every ServiceNow script in servicenow/ passes before it is built.

ServiceNow runs server-side scripts in its Rhino-based engine; in the global scope that engine is ES5
(ES2015+ syntax such as `let`, arrow functions or template literals is a syntax error there). A script
is checked twice:

- parsed with esprima (which reads up to ES2017) and its syntax tree walked: any node or flag that ES5
  does not have (`let`/`const`, arrows, classes, template literals, destructuring, default and rest
  parameters, spread, `for...of`, generators, `async`, shorthand/computed/method properties, `**`,
  `u`/`y`/`s` regular expressions, `0b`/`0o` numbers, `\\u{...}` escapes) is a finding, with its line;
- compiled by Duktape, an ES5 engine, which refuses what the parse may let through (a trailing comma in
  a parameter list, for one). Duktape is lenient about `const`, hence the parse first.

    problems = es5_problems(source, "sys_script_include/WfmPublish.script")
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# ES2015+ node types: any of these in the tree is not ES5.
_LATER_NODES = {
    "ArrowFunctionExpression": "an arrow function",
    "ClassDeclaration": "a class",
    "ClassExpression": "a class",
    "TemplateLiteral": "a template literal",
    "TaggedTemplateExpression": "a tagged template",
    "SpreadElement": "a spread (...)",
    "RestElement": "a rest parameter (...)",
    "ObjectPattern": "destructuring",
    "ArrayPattern": "destructuring",
    "AssignmentPattern": "a default value",
    "ForOfStatement": "for...of",
    "YieldExpression": "yield",
    "AwaitExpression": "await",
    "MetaProperty": "new.target",
    "Super": "super",
    "ImportDeclaration": "import",
    "ExportNamedDeclaration": "export",
    "ExportDefaultDeclaration": "export",
    "ExportAllDeclaration": "export",
}
_LATER_REGEX_FLAGS = re.compile(r"[uys]")
_LATER_NUMBER = re.compile(r"^0[bBoO]")
_CODE_POINT_ESCAPE = re.compile(r"\\u\{")


def es5_problems(source: str, where: str, *, expression: bool = False) -> list[str]:
    """What in `source` is not ES5 ([] when it all is). `expression`: the source is one expression (a
    business rule's or UI action's condition), not a script."""
    import esprima

    code = f"({source}\n);" if expression else source
    try:
        tree = esprima.parseScript(code, {"loc": True}).toDict()
    except esprima.Error as exc:
        return [f"{where}: does not parse: {exc}"]
    found = [f"{where}, line {line}: {what} is not ES5" for line, what in sorted(set(_later(tree)))]
    if not found:
        found = _duktape_problems(code, where)
    return found


def _later(node: Any) -> Iterator[tuple[int, str]]:
    if isinstance(node, list):
        for item in node:
            yield from _later(item)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    line = int(((node.get("loc") or {}).get("start") or {}).get("line") or 0)
    if kind in _LATER_NODES:
        yield line, _LATER_NODES[kind]
    elif kind == "VariableDeclaration" and node.get("kind") != "var":
        yield line, f"`{node.get('kind')}`"
    elif kind in {"FunctionDeclaration", "FunctionExpression"} and (
        node.get("generator") or node.get("async")
    ):
        yield line, "a generator or async function"
    elif kind == "Property" and (node.get("shorthand") or node.get("computed") or node.get("method")):
        yield line, "a shorthand, computed or method property"
    elif kind in {"BinaryExpression", "AssignmentExpression"} and str(node.get("operator", "")).startswith(
        "**"
    ):
        yield line, "the ** operator"
    elif kind == "Literal":
        yield from _later_literal(node, line)
    for key, value in node.items():
        if key not in {"loc", "type"}:
            yield from _later(value)


def _later_literal(node: dict[str, Any], line: int) -> Iterator[tuple[int, str]]:
    regex = node.get("regex")
    raw = str(node.get("raw") or "")
    if isinstance(regex, dict) and _LATER_REGEX_FLAGS.search(str(regex.get("flags") or "")):
        yield line, f"the regular expression flag(s) {regex.get('flags')}"
    elif isinstance(node.get("value"), int | float) and _LATER_NUMBER.match(raw):
        yield line, f"the number literal {raw}"
    elif isinstance(node.get("value"), str) and _CODE_POINT_ESCAPE.search(raw):
        yield line, "a \\u{...} escape"


def _duktape_problems(code: str, where: str) -> list[str]:
    """Compile (not run) the code in Duktape, an ES5 engine."""
    import dukpy

    interpreter = dukpy.JSInterpreter()
    try:
        interpreter.evaljs("new Function(dukpy.source); true", source=code)
    except dukpy.JSRuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "a syntax error"
        return [f"{where}: Duktape (ES5) refuses it: {first}"]
    return []
