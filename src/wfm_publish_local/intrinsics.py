"""CloudFormation's intrinsic functions (Ref, Fn::GetAtt, Fn::Sub, Fn::If, …) resolved to local values.

Resolver(template, refs={...}, attributes={...}).resolve({"Ref": "JobsTable"})
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from wfm_publish_local.template import Template, TemplateError, scalar_text


class ResolutionError(TemplateError):
    """An intrinsic function refers to something the resolver was not given."""


PSEUDO_PARAMETER_DEFAULTS: Mapping[str, str] = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "wfm-publish-local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/wfm-publish-local/local",
    "AWS::NotificationARNs": "",
}


_NO_VALUE = object()


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Turns intrinsic functions into local values.

    refs: logical id -> what !Ref returns (queue URL, table name, secret ARN, …).
    attributes: (logical id, attribute) -> what !GetAtt returns (("ValidationQueue", "Arn") -> arn).
    parameters: parameter name -> value (see Template.parameter_values).
    pseudo: AWS::Region and friends (defaults in PSEUDO_PARAMETER_DEFAULTS).
    """

    def __init__(
        self,
        template: Template,
        refs: Mapping[str, str] | None = None,
        attributes: Mapping[tuple[str, str], str] | None = None,
        parameters: Mapping[str, str] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.refs: dict[str, str] = dict(refs or {})
        self.attributes: dict[tuple[str, str], str] = dict(attributes or {})
        self.parameters: dict[str, str] = (
            dict(parameters) if parameters is not None else template.parameter_values()
        )
        self.pseudo: dict[str, str] = {**PSEUDO_PARAMETER_DEFAULTS, **(pseudo or {})}
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in value (recursively); AWS::NoValue entries are dropped."""
        result = self._resolve(value)
        return None if result is _NO_VALUE else result

    def resolve_str(self, value: Any) -> str:
        """Resolve to the text an environment variable would hold."""
        result = self.resolve(value)
        if isinstance(result, (dict, list)):
            return json.dumps(result)
        return "" if result is None else scalar_text(result)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.conditions:
                raise ResolutionError(f"unknown condition {name}")
            self._conditions[name] = bool(self._resolve(self.template.conditions[name]))
        return self._conditions[name]

    # ------------------------------------------------------------ internals

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self._resolve(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self._ref(str(arg))
            if key == "Condition":
                return self.condition(str(arg))
            if isinstance(key, str) and key.startswith("Fn::"):
                return self._function(key, arg)
        out: dict[str, Any] = {}
        for key, item in value.items():
            resolved = self._resolve(item)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        raise ResolutionError(
            f"!Ref {name}: no value for it (not a parameter, pseudo parameter or known resource)"
        )

    def _getatt(self, arg: Any) -> str:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        logical_id, attribute = str(arg[0]), str(self._resolve(arg[1]))
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise ResolutionError(f"!GetAtt {logical_id}.{attribute}: no value for it") from None

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self._resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} -> ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return scalar_text(variables[name])
            if "." in name and name.split(".", 1)[0] in self.template.resources:
                return self._getatt(name)
            return scalar_text(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _function(self, key: str, arg: Any) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per intrinsic
        if key == "Fn::GetAtt":
            return self._getatt(arg)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            name, if_true, if_false = arg
            return self._resolve(if_true if self.condition(str(name)) else if_false)
        if key == "Fn::Equals":
            left, right = (self._resolve(a) for a in arg)
            return scalar_text(left) == scalar_text(right)
        if key == "Fn::Not":
            return not self._resolve(arg[0])
        if key == "Fn::And":
            return all(self._resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self._resolve(a) for a in arg)
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(scalar_text(i) for i in self._resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self._resolve(items)[int(self._resolve(index))]
        if key == "Fn::Split":
            delimiter, text = arg
            return str(self._resolve(text)).split(str(delimiter))
        if key == "Fn::FindInMap":
            name, top, second = (self._resolve(a) for a in arg[:3])
            try:
                return self.template.mappings[name][top][second]
            except KeyError:
                raise ResolutionError(f"!FindInMap {name}/{top}/{second}: not in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(str(self._resolve(arg)).encode()).decode()
        if key == "Fn::ToJsonString":
            return json.dumps(self._resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self._resolve(arg))
        if key == "Fn::GetAZs":
            region = self._resolve(arg) or self.pseudo["AWS::Region"]
            return [f"{region}a", f"{region}b", f"{region}c"]
        raise ResolutionError(f"{key} is not supported by the local resolver")
