"""Turning a task function's signature into validation: send-side JSON, worker-side call args.

Two shapes are supported. A function with exactly one parameter annotated with a pydantic model
takes that model (its fields are the JSON args). Any other signature takes plain parameters,
stored as a JSON object keyed by parameter name and validated by a model built from the
signature. ``*args``/``**kwargs`` are refused: they have no stable JSON form.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict

from ._exceptions import DefinitionError, InvalidArgs
from ._jsoncheck import json_problem, lossy_problem


class ArgsSpec:
    """The validated argument shape of one task function."""

    def __init__(self, fn: Callable[..., Any], task_name: str) -> None:
        self.task_name = task_name
        try:
            # eval_str resolves ``from __future__ import annotations`` strings; it also
            # handles functools.partial and callable objects, unlike get_type_hints.
            self.signature = inspect.signature(fn, eval_str=True)
        except Exception as exc:  # unresolvable string annotation
            where = getattr(fn, "__qualname__", repr(fn))
            raise DefinitionError(
                f"task {task_name!r}: cannot resolve the annotations of {where} "
                f"({exc}); define the types at module level") from exc
        params = list(self.signature.parameters.values())
        hints = {p.name: p.annotation for p in params
                 if p.annotation is not inspect.Parameter.empty}
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise DefinitionError(f"task {task_name!r}: *args/**kwargs cannot be sent as "
                                      "JSON; name the parameters or take one pydantic model")
        self.positional_only = {p.name for p in params if p.kind == p.POSITIONAL_ONLY}
        single = hints.get(params[0].name) if len(params) == 1 else None
        self.model_param: str | None = None
        if isinstance(single, type) and issubclass(single, BaseModel):
            self.model_param = params[0].name
            self.model: type[BaseModel] = single
        else:
            fields: dict[str, Any] = {}
            for p in params:
                default = ... if p.default is inspect.Parameter.empty else p.default
                fields[p.name] = (hints.get(p.name, Any), default)
            try:
                self.model = pydantic.create_model(  # type: ignore[call-overload]
                    f"{task_name.replace('.', '_')}_args",
                    __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                    **fields)
            except Exception as exc:
                raise DefinitionError(f"task {task_name!r}: its parameters cannot be "
                                      f"validated as JSON: {exc}") from exc
        self.required = [p.name for p in params if p.default is inspect.Parameter.empty]

    @property
    def all_defaulted(self) -> bool:
        return not self.required

    def json_schema(self) -> dict[str, Any] | None:
        try:
            return self.model.model_json_schema()
        except Exception:  # a type pydantic validates but cannot describe
            return None

    def to_json(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Validate call arguments as given to ``.send()``; return the JSON args to store."""
        try:
            if self.model_param is not None:
                data = self._model_data(args, kwargs)
            else:
                bound = self.signature.bind(*args, **kwargs)
                data = dict(bound.arguments)
            validated = self.model.model_validate(data)
            dumped = validated.model_dump(mode="json")
            # The JSON dump turns NaN into null and int keys into strings without a word:
            # refused unless the signature turns them back (``dict[int, X]`` does).
            problem = lossy_problem(validated.model_dump(), "args")
            if problem and not self._round_trips(validated, dumped):
                raise InvalidArgs(self.task_name, problem)
        except TypeError as exc:
            raise InvalidArgs(self.task_name, str(exc)) from exc
        except pydantic.ValidationError as exc:
            raise InvalidArgs(self.task_name, _errors(exc)) from exc
        except pydantic_core.PydanticSerializationError as exc:
            raise InvalidArgs(self.task_name, f"not JSON-able: {exc}") from exc
        problem = json_problem(dumped, "args")
        if problem:
            raise InvalidArgs(self.task_name, problem)
        return dumped

    def _round_trips(self, validated: BaseModel, dumped: Any) -> bool:
        """Whether the worker, validating the stored JSON, gets back what was sent."""
        try:
            again = self.model.model_validate(dumped)
        except pydantic.ValidationError:
            return False
        return bool(again.model_dump() == validated.model_dump())

    def _model_data(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if args and kwargs or len(args) > 1:
            raise TypeError(f"give one {self.model.__name__} (or its fields as keywords)")
        if not args:
            return dict(kwargs)
        value = args[0]
        if isinstance(value, BaseModel):
            # Dump and re-validate: a mutated instance may no longer be valid.
            return value.model_dump(mode="json")
        return value

    def from_json(self, json_args: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The worker side: JSON args as stored → ``(args, kwargs)`` for the function."""
        if json_args is None:
            json_args = {}
        try:
            validated = self.model.model_validate(json_args)
        except pydantic.ValidationError as exc:
            raise InvalidArgs(self.task_name, _errors(exc)) from exc
        if self.model_param is not None:
            values = {self.model_param: validated}
        else:
            values = {name: getattr(validated, name) for name in type(validated).model_fields}
        args = tuple(v for k, v in values.items() if k in self.positional_only)
        kwargs = {k: v for k, v in values.items() if k not in self.positional_only}
        return args, kwargs


def _errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
