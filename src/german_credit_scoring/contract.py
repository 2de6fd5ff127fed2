"""Declarative feature definitions (``features/features.yaml``): the data contract.

One file says, for every input column, its type, meaning, owner, allowed values or range, how it is
transformed and whether it is sensitive. Validation suites, the model's transformation and the
service's input contract are all derived from it, so they cannot disagree.
"""

from __future__ import annotations

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
    # The phrase a reason code shows for this feature (e.g. "Length of the loan"); default: description.
    reason: str = ""
    owner: str = ""
    allowed_values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    transformation: Transformation | None = None
    sensitive: bool = False
    # identifies a person (a customer number, a name): hashed or dropped before a prediction is logged
    identifying: bool = False
    # the person cannot change it (age, a past repayment record): never suggested by a counterfactual hint
    immutable: bool = False

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
    def identifying(self) -> list[str]:
        """Names of the features that identify a person (never written to a log in clear)."""
        return [f.name for f in self.features if f.identifying]

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
        details = "\n".join(f"  - {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
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


def infer_features(
    frame,
    target: str,
    sensitive: list[str] | tuple[str, ...] = (),
    owner: str = "",
    max_categories: int = 50,
) -> FeatureSet:
    """Draft feature definitions from a data frame, to be reviewed and committed.

    A thin wrapper: the one implementation is ``inference.infer_features_dict`` (standard library only,
    so the project generator can run it too). Numeric columns get their observed range rounded
    outwards, text columns their categories; identifier-like text columns are refused.
    """
    from german_credit_scoring import inference

    text_columns = [str(name) for name in frame.columns if not _is_numeric_or_bool(frame[name])]
    profile = inference.profile_columns(
        {str(name): frame[name].tolist() for name in frame.columns}, "data", text_columns
    )
    drafted = inference.infer_features_dict(profile, target, sensitive, owner, max_categories)
    return FeatureSet.model_validate(drafted)


def _is_numeric_or_bool(column) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))
