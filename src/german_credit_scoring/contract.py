"""Declarative feature definitions (``features/features.yaml``): the data contract.

One file says, for every input column, its type, meaning, owner, allowed values or range, how it is
transformed and whether it is sensitive. Validation suites, the model's transformation and the
service's input contract are all derived from it, so they cannot disagree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from german_credit_scoring.errors import ContractError

Dtype = Literal["int", "float", "category"]
Transformation = Literal["one_hot", "standard", "log1p_standard", "passthrough"]
NUMERIC_DTYPES = ("int", "float")


class FeatureDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dtype: Dtype
    description: str = ""
    owner: str = ""
    allowed_values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    transformation: Transformation | None = None
    sensitive: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> FeatureDefinition:
        if self.dtype == "category":
            if self.min is not None or self.max is not None:
                raise ValueError(f"feature {self.name!r}: a category has allowed_values, not min/max")
            if self.transformation not in (None, "one_hot"):
                raise ValueError(f"feature {self.name!r}: a category can only be one_hot encoded")
        else:
            if self.allowed_values is not None:
                raise ValueError(f"feature {self.name!r}: a numeric feature has min/max, not allowed_values")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"feature {self.name!r}: min {self.min} is above max {self.max}")
            if self.transformation == "one_hot":
                raise ValueError(f"feature {self.name!r}: one_hot is for categories; use standard")
            if self.transformation == "log1p_standard" and self.min is not None and self.min <= -1:
                raise ValueError(f"feature {self.name!r}: log1p needs min > -1, got {self.min}")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.dtype in NUMERIC_DTYPES

    @property
    def effective_transformation(self) -> Transformation:
        if self.transformation is not None:
            return self.transformation
        return "standard" if self.is_numeric else "one_hot"


class FeatureSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    features: list[FeatureDefinition] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureSet:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"features defined more than once: {duplicates}")
        return self

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def get(self, name: str) -> FeatureDefinition:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise ContractError(f"no feature named {name!r} in the feature definitions")

    def model_inputs(self, include_sensitive: bool = False) -> list[FeatureDefinition]:
        """The features the model sees: sensitive ones only when explicitly allowed."""
        return [f for f in self.features if include_sensitive or not f.sensitive]

    @property
    def numeric(self) -> list[FeatureDefinition]:
        return [f for f in self.features if f.is_numeric]

    @property
    def categorical(self) -> list[FeatureDefinition]:
        return [f for f in self.features if not f.is_numeric]


def load_features(path: Path | str) -> FeatureSet:
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: feature definitions not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return FeatureSet.model_validate(raw)
    except yaml.YAMLError as error:
        raise ContractError(f"{path}: not valid YAML: {error}") from None
    except ValidationError as error:
        details = "\n".join(
            f"  - {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ContractError(f"{path}: invalid feature definitions\n{details}") from None


class _ContractDumper(yaml.SafeDumper):
    """Short lists of scalars on one line: a reviewer reads a category set at a glance."""


def _represent_list(dumper: yaml.SafeDumper, items: list):
    flow = all(not isinstance(item, dict | list) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_ContractDumper.add_representer(list, _represent_list)


def dump_features(features: FeatureSet, path: Path | str, header: str = "") -> None:
    data = features.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    text = yaml.dump(data, Dumper=_ContractDumper, sort_keys=False, allow_unicode=True, width=100)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(header + text, encoding="utf-8")


def _round_out(value: float, up: bool) -> float:
    """Widen a bound to a readable number so the contract does not reject the next honest value."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = 10 ** max(math.floor(math.log10(abs(value))) - 1, 0)
    return float((math.ceil if up else math.floor)(value / magnitude) * magnitude)


def infer_features(
    frame,
    target: str,
    sensitive: list[str] | tuple[str, ...] = (),
    owner: str = "",
    max_categories: int = 50,
) -> FeatureSet:
    """Draft feature definitions from a data frame, to be reviewed and committed.

    Numeric columns get their observed range (rounded outwards, never below 0 when the data is not),
    text columns their observed categories. Columns with more distinct values than ``max_categories``
    are refused: they are identifiers or free text, which need a deliberate decision.
    """
    import pandas as pd

    if target not in frame.columns:
        raise ContractError(f"target column {target!r} is not in the data (columns: {list(frame.columns)})")
    missing = [name for name in sensitive if name not in frame.columns]
    if missing:
        raise ContractError(f"protected attributes {missing} are not in the data")
    definitions = []
    for name in frame.columns:
        if name == target:
            continue
        column = frame[name]
        nullable = bool(column.isna().any())
        if pd.api.types.is_bool_dtype(column):
            column = column.astype("string")
        if pd.api.types.is_numeric_dtype(column):
            non_null = column.dropna()
            is_int = pd.api.types.is_integer_dtype(column) or bool(
                len(non_null) and (non_null == non_null.round()).all()
            )
            low = float(non_null.min()) if len(non_null) else None
            high = float(non_null.max()) if len(non_null) else None
            if low is not None and high is not None:
                low_r, high_r = _round_out(low, up=False), _round_out(high, up=True)
                if low >= 0:
                    low_r = max(low_r, 0.0)
                low, high = low_r, high_r
            definitions.append(
                FeatureDefinition(
                    name=str(name),
                    dtype="int" if is_int else "float",
                    description="",
                    owner=owner,
                    min=low,
                    max=high,
                    nullable=nullable,
                    sensitive=name in sensitive,
                )
            )
        else:
            values = sorted({str(v) for v in column.dropna().unique()})
            if len(values) > max_categories:
                raise ContractError(
                    f"column {name!r} has {len(values)} distinct text values (more than {max_categories}); "
                    "it looks like an identifier or free text: drop it or declare it by hand"
                )
            definitions.append(
                FeatureDefinition(
                    name=str(name),
                    dtype="category",
                    description="",
                    owner=owner,
                    allowed_values=values,
                    nullable=nullable,
                    sensitive=name in sensitive,
                )
            )
    if not definitions:
        raise ContractError("the data has no column besides the target")
    return FeatureSet(features=definitions)
