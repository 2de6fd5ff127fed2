"""Data sets nobody tuned the template to, made here with a seed: other targets, labels, types, formats.

Each one comes with the cookiecutter answers a team would type for it. They are small (2,000 rows,
so that a generated project's pipeline and tests run in CI time, and not smaller: the drift tests
compare a held-out quarter with the training rows, and at a few hundred rows sampling noise alone
moves a numeric column past the KS threshold); what they stress is shape:
numeric-only features, high-cardinality and missing categories, a 0/1 integer target, Parquet input,
and a gate that refuses the first model on fairness (with a hyphenated name, a positive label with
symbols and two protected attributes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DataSet:
    key: str
    file_name: str
    answers: dict[str, str]
    frame: pd.DataFrame = field(repr=False)

    @property
    def slug(self) -> str:
        return self.answers["project_slug"]

    def write(self, folder: Path) -> Path:
        path = folder / self.file_name
        folder.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".parquet":
            self.frame.to_parquet(path, index=False)
        else:
            self.frame.to_csv(path, index=False)
        return path


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def numeric_only(rows: int = 2000, seed: int = 1) -> DataSet:
    """Every feature a number (some negative, one with missing values); a numeric protected attribute."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    age = rng.integers(18, 80, size=rows)
    score = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] - 0.6
    fault = rng.random(rows) < _logistic(score)
    frame = pd.DataFrame({f"sensor_{i}": np.round(x[:, i] * 10, 3) for i in range(5)})
    frame.loc[rng.random(rows) < 0.05, "sensor_4"] = np.nan
    frame["operator_age"] = age
    frame["fault"] = np.where(fault, "yes", "no")
    answers = {
        "project_name": "Sensor Fault",
        "project_slug": "sensor-fault",
        "target": "fault",
        "positive_label": "yes",
        "protected_attributes": "operator_age",
    }
    return DataSet("numeric-only", "sensors.csv", answers, frame)


def high_cardinality(rows: int = 2000, seed: int = 2) -> DataSet:
    """A 45-value category, categories with missing cells, a text protected attribute."""
    rng = np.random.default_rng(seed)
    cities = [f"city_{i:02d}" for i in range(45)]
    city = rng.choice(cities, size=rows)
    plan = rng.choice(["basic", "plus", "pro", "family"], size=rows).astype(object)
    plan[rng.random(rows) < 0.1] = None
    channel = rng.choice(["web", "shop", "phone"], size=rows).astype(object)
    channel[rng.random(rows) < 0.08] = None
    region = rng.choice(["north", "south", "east", "west", "centre"], size=rows)
    tenure = rng.integers(1, 72, size=rows)
    spend = np.round(rng.gamma(2.0, 30.0, size=rows), 2)
    score = -0.04 * tenure + 0.01 * spend + np.where(plan == "basic", 0.8, 0.0) - 0.3
    churned = rng.random(rows) < _logistic(score)
    frame = pd.DataFrame(
        {
            "city": city,
            "plan": plan,
            "channel": channel,
            "region": region,
            "tenure_months": tenure,
            "monthly_spend": spend,
            "churned": np.where(churned, "Y", "N"),
        }
    )
    answers = {
        "project_name": "Churn Watch",
        "project_slug": "churn-watch",
        "target": "churned",
        "positive_label": "Y",
        "protected_attributes": "region",
    }
    return DataSet("high-cardinality", "churn.csv", answers, frame)


def integer_target(rows: int = 2000, seed: int = 3) -> DataSet:
    """The target is 0/1 integers and the positive label is 1."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10, 0.5, size=rows), 0)
    debt = np.round(rng.uniform(0, 1.2, size=rows) * income, 0)
    employment = rng.choice(["salaried", "self", "none"], size=rows, p=[0.6, 0.3, 0.1])
    gender = rng.choice(["f", "m"], size=rows)
    score = 2.5 * debt / income - np.where(employment == "salaried", 0.7, 0.0) - 1.0
    default = (rng.random(rows) < _logistic(score)).astype(int)
    frame = pd.DataFrame(
        {"income": income, "debt": debt, "employment": employment, "gender": gender, "default": default}
    )
    answers = {
        "project_name": "Default Flag",
        "project_slug": "default-flag",
        "target": "default",
        "positive_label": "1",
        "protected_attributes": "gender",
    }
    return DataSet("integer-target", "loans.csv", answers, frame)


def parquet_input(rows: int = 2000, seed: int = 4) -> DataSet:
    """The data arrives as Parquet."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(4, size=rows)
    basket = np.round(rng.gamma(3.0, 15.0, size=rows), 2)
    segment = rng.choice(["new", "loyal", "lapsed"], size=rows)
    group = rng.choice(["a", "b", "c"], size=rows)
    score = 0.3 * visits - 0.02 * basket + np.where(segment == "lapsed", 1.0, 0.0) - 0.8
    responded = rng.random(rows) < _logistic(score)
    frame = pd.DataFrame(
        {
            "visits": visits,
            "basket_value": basket,
            "segment": segment,
            "age_group": group,
            "response": np.where(responded, "responded", "ignored"),
        }
    )
    answers = {
        "project_name": "Offer Response",
        "project_slug": "offer-response",
        "target": "response",
        "positive_label": "responded",
        "protected_attributes": "age_group",
    }
    return DataSet("parquet", "offers.parquet", answers, frame)


def unfair(rows: int = 2000, seed: int = 5) -> DataSet:
    """The outcome follows a protected group through a proxy: the gate must refuse the first model.

    A hyphenated project name, a positive label with symbols and two protected attributes."""
    rng = np.random.default_rng(seed)
    ethnicity = rng.choice(["group_a", "group_b"], size=rows, p=[0.6, 0.4])
    gender = rng.choice(["female", "male"], size=rows)
    # the district stands in for the group (a proxy), so the model learns the group without seeing it
    district = np.where(
        ethnicity == "group_a",
        rng.choice(["d1", "d2", "d3"], size=rows),
        rng.choice(["d4", "d5"], size=rows),
    )
    amount = np.round(rng.gamma(2.0, 2500.0, size=rows), 0)
    months = rng.integers(6, 60, size=rows)
    score = 0.00005 * amount + 0.02 * months + np.where(ethnicity == "group_b", 2.2, -1.2) - 1.5
    late = rng.random(rows) < _logistic(score)
    frame = pd.DataFrame(
        {
            "district": district,
            "loan_amount": amount,
            "term_months": months,
            "ethnicity": ethnicity,
            "gender": gender,
            "repayment": np.where(late, "late: >90 days (%)", "on time"),
        }
    )
    answers = {
        "project_name": "Loan-Risk Check",
        "project_slug": "loan-risk-check",
        "target": "repayment",
        "positive_label": "late: >90 days (%)",
        "protected_attributes": "ethnicity, gender",
    }
    return DataSet("unfair", "repayments.csv", answers, frame)


ALL = (numeric_only, high_cardinality, integer_target, parquet_input, unfair)
