"""The Definitions page's send form: fields generated from a task definition's JSON schema
for its args, and the submitted form turned back into args.

Only the top level of an object schema becomes fields: ``string`` (or a ``format`` such as
``uri``) a text box, ``integer``/``number`` a number box, ``boolean`` a check box, an
``enum`` a drop-down; anything else (arrays, nested objects, unions) a JSON text area. A
schema that is not an object with properties gets one JSON text area for the whole args.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

FIELD_PREFIX = "arg."
RAW_FIELD = "args_json"
MAX_FIELDS = 40


@dataclass(frozen=True)
class FormField:
    name: str
    kind: str  # text | integer | number | boolean | choice | json
    required: bool
    label: str
    help: str
    default: str  # the input's initial value (text), "" for none
    choices: list[str]  # an enum's values as the drop-down shows them
    values: tuple[Any, ...] = ()  # the same values as the schema has them

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    def shown(self, text: str) -> str:
        """The value to put back in the input: a number box takes only a number."""
        if self.kind in ("integer", "number"):
            try:
                float(text)
            except ValueError:
                return ""
        return text


def _kind(spec: dict[str, Any]) -> str:
    if "enum" in spec and isinstance(spec["enum"], list) and spec["enum"]:
        return "choice"
    kind = spec.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the non-null one
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return {"string": "text", "integer": "integer", "number": "number",
            "boolean": "boolean"}.get(kind or "", "json")


def _initial(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "boolean":
        return "on" if value else ""
    if kind in ("text", "choice") and isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if kind in ("json", "choice") else str(value)


def fields_of(schema: Any) -> list[FormField] | None:
    """The form's fields, or None: the schema has no object properties (one JSON box)."""
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) \
        else set()
    out: list[FormField] = []
    # JSONB does not keep the schema's key order: required fields first, then by name.
    ordered = sorted(props.items(), key=lambda kv: (kv[0] not in required, str(kv[0])))
    for name, spec in ordered[:MAX_FIELDS]:
        spec = spec if isinstance(spec, dict) else {}
        kind = _kind(spec)
        choices = ([c if isinstance(c, str) else orjson.dumps(c).decode() for c in spec["enum"]]
                   if kind == "choice" else [])
        out.append(FormField(
            name=str(name), kind=kind, required=name in required,
            label=str(spec.get("title") or name), help=str(spec.get("description") or ""),
            default=_initial(kind, spec.get("default")), choices=choices,
            values=tuple(spec["enum"]) if kind == "choice" else ()))
    return out


class FormError(ValueError):
    """A value typed in the form is not what the schema asks for (shown beside the form)."""


def _value(f: FormField, text: str | None) -> tuple[bool, Any]:
    """(present, value) of one field from its submitted text."""
    if f.kind == "boolean":
        return True, text == "on"
    if text is None or not text.strip():
        if f.required:
            raise FormError(f"{f.label} is required")
        return False, None
    text = text.strip()
    try:
        if f.kind == "integer":
            return True, int(text)
        if f.kind == "number":
            return True, float(text)
        if f.kind == "choice":
            if text not in f.choices:
                raise FormError(f"{f.label}: choose one of {', '.join(f.choices)}")
            return True, f.values[f.choices.index(text)]
        if f.kind == "json":
            return True, orjson.loads(text)
    except FormError:
        raise
    except ValueError as exc:  # orjson.JSONDecodeError is one
        what = {"integer": "a whole number", "number": "a number"}.get(f.kind, "valid JSON")
        raise FormError(f"{f.label}: not {what}") from exc
    return True, text


def args_from(schema: Any, data: dict[str, str]) -> Any:
    """The args to send, from the submitted form."""
    fields = fields_of(schema)
    if fields is None:
        raw = (data.get(RAW_FIELD) or "").strip()
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FormError(f"args: not valid JSON ({exc})") from exc
    args: dict[str, Any] = {}
    for f in fields:
        present, value = _value(f, data.get(f.input_name))
        if present:
            args[f.name] = value
    return args
