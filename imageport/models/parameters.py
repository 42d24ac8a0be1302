"""``as_parameters``: a model as a deployment's parameter schema accepts it (what the UI's forms send).

``model_dump(mode="json")`` writes every field, its defaults filled, and so ``null`` for an optional
field left out (a reference's ``format``). Prefect checks a run's parameters against the deployment's
schema (``enforce_parameter_schema``): its preprocessing lets a property without a default be ``null``
by widening its ``type``, but an optional enum keeps its ``enum`` list, which has no ``null``, so the
server refuses the run (409 on ``spec.staging.format``). The UI's form omits such a field; so does
this. Only a ``None`` that *is* the field's default is left out: parsing the result gives back the
same model, and an explicit ``None`` over another default (it means something there) is kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _pruned(model: object, dumped: Any) -> Any:
    if isinstance(model, BaseModel) and isinstance(dumped, dict):
        fields = type(model).model_fields
        kept = {}
        for name, value in dumped.items():
            field = fields.get(name)
            if value is None and field is not None and field.default is None and field.default_factory is None:
                continue
            kept[name] = _pruned(getattr(model, name, None), value)
        return kept
    if isinstance(model, list | tuple) and isinstance(dumped, list):
        return [_pruned(item, value) for item, value in zip(model, dumped, strict=True)]
    if isinstance(model, dict) and isinstance(dumped, dict):
        return {key: _pruned(model.get(key), value) for key, value in dumped.items()}
    return dumped


def as_parameters(model: BaseModel) -> dict[str, Any]:
    """The model's JSON, defaults filled, without the ``None`` values that are their fields' defaults."""
    return _pruned(model, model.model_dump(mode="json"))
