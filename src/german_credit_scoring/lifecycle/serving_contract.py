"""The service's input contract, generated from the feature definitions (``features/features.yaml``).

The same file that drives validation suites and the model's transformation produces a pydantic model
of one request record, so a new column, category or range reaches the service without code changes.
Types are strict (``"12"`` is not a number, ``true`` is not an int), categories are the declared
``allowed_values`` and numbers must lie in ``[min, max]``. Every problem of a payload is reported at
once, each naming the field (and the record index in a batch).

Which fields a record has:
- every model input (``FeatureSet.model_inputs``): required, unless declared ``nullable``;
- declared features the model does not use (sensitive ones when ``use_protected_as_features`` is off):
  optional; validated when sent and kept in the prediction log for fairness monitoring, never scored;
- anything else is an unknown field and rejected (a typo must not silently become a missing value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
)

from german_credit_scoring.contract import FeatureDefinition, FeatureSet


def _annotation(feature: FeatureDefinition) -> Any:
    """The pydantic type of one feature's value (without the null option)."""
    if feature.dtype == "category":
        if feature.allowed_values:
            return Literal[tuple(feature.allowed_values)]  # type: ignore[valid-type]
        return Annotated[str, Field(strict=True)]
    bounds: dict[str, Any] = {"allow_inf_nan": False}
    if feature.min is not None:
        bounds["ge"] = feature.min
    if feature.max is not None:
        bounds["le"] = feature.max
    if feature.dtype == "int":
        # Strict: an int field takes a JSON integer; 30.5, "30" and true are type errors, not coerced.
        return Annotated[StrictInt, Field(ge=bounds.get("ge"), le=bounds.get("le"))]
    return Annotated[float, Field(strict=True, **bounds)]  # strict float takes ints, not bools or strings


def build_record_model(
    features: FeatureSet, include_sensitive: bool = False, name: str = "Record"
) -> type[BaseModel]:
    """A pydantic model of one request record, derived from the feature definitions.

    Field names are the feature names (as aliases: a column called ``class`` or ``loan-amount`` is
    fine); internal attribute names are positional and never shown to clients.
    """
    model_inputs = {f.name for f in features.model_inputs(include_sensitive)}
    fields: dict[str, Any] = {}
    for index, feature in enumerate(features.features):
        annotation = _annotation(feature)
        required = feature.name in model_inputs and not feature.nullable
        if feature.nullable or feature.name not in model_inputs:
            annotation = annotation | None  # type: ignore[operator]
        description = feature.description or feature.name
        if feature.name not in model_inputs:
            description += " (optional: logged for monitoring, not used by the model)"
        info = Field(... if required else None, alias=feature.name, description=description)
        fields[f"f{index}"] = (annotation, info)
    config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)
    return create_model(name, __config__=config, **fields)


def batch_type(record_model: type[BaseModel], max_batch_size: int) -> Any:
    """The type of a batch: between 1 and ``max_batch_size`` records."""
    return Annotated[list[record_model], Field(min_length=1, max_length=max_batch_size)]  # type: ignore[valid-type]


def as_feature_dict(record: BaseModel) -> dict[str, Any]:
    """A validated record as ``{feature name: value}`` (every declared feature, ``None`` when absent)."""
    return record.model_dump(by_alias=True)


def field_attributes(record_model: type[BaseModel]) -> dict[str, str]:
    """Feature name -> attribute name of that field on the record model."""
    return {info.alias or name: name for name, info in record_model.model_fields.items()}


def as_columns(
    records: Sequence[BaseModel], attributes: Mapping[str, str], names: Iterable[str]
) -> dict[str, list[Any]]:
    """Validated records as ``{feature name: values}`` for the named features, in record order.

    Read attribute by attribute: a dict per record (``model_dump``) then a frame from records costs
    several times more on a 1,000-record batch.
    """
    return {name: [getattr(record, attributes[name]) for record in records] for name in names}


def as_json(records: Sequence[BaseModel]) -> list[bytes]:
    """Each validated record as JSON keyed by feature name (the prediction log's ``inputs``)."""
    return [record.__pydantic_serializer__.to_json(record, by_alias=True) for record in records]


def describe_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Flatten pydantic errors to ``{"record", "field", "problem"}`` items a client can act on.

    ``record`` is the index in a batch (``None`` for a single record or a problem with the batch itself).
    """
    problems = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        loc = list(item["loc"])
        record = next((part for part in loc if isinstance(part, int)), None)
        names = [str(part) for part in loc if isinstance(part, str)]
        problems.append(
            {
                "record": record,
                "field": names[-1] if names else None,
                "problem": item["msg"],
                "type": item["type"],
            }
        )
    return problems


def validate_record(
    record_model: type[BaseModel], payload: Any
) -> tuple[BaseModel | None, list[dict[str, Any]]]:
    """Validate one record; returns the record or every problem found."""
    try:
        return record_model.model_validate(payload), []
    except ValidationError as error:
        return None, describe_errors(error)


def validate_batch(
    record_model: type[BaseModel], payload: Any, max_batch_size: int
) -> tuple[list[BaseModel] | None, list[dict[str, Any]]]:
    """Validate a batch as the service does: all problems of all records, with their indexes."""
    adapter = TypeAdapter(batch_type(record_model, max_batch_size))
    try:
        return adapter.validate_python(payload), []
    except ValidationError as error:
        return None, describe_errors(error)
