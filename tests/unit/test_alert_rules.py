"""The alert rules in deploy/ name only metrics the platform exports, with labels those metrics
have: a rule over a renamed or misspelt metric would stay silent forever, which is the worst
thing an alert can do."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import fulema.app  # noqa: F401 - imports every module that defines a metric

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "fulema-rules.yml"
SELECTOR = re.compile(r"(fulema_[a-z_]+)(\{[^}]*\})?")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
COMMON_LABELS = {"instance", "job", "le"}


def exported() -> dict[str, set[str]]:
    """Every fulema_* family with its label names."""
    families: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        for metric in collector.describe() if hasattr(collector, "describe") else []:
            if metric.name.startswith("fulema_"):
                labels = set(getattr(collector, "_labelnames", ()))
                families[metric.name] = labels
    return families


def rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_rule_names_an_exported_metric_with_its_labels() -> None:
    families = exported()
    assert "fulema_payments" in families  # the registry was read
    for rule in rules():
        expr = str(rule["expr"])
        for name, selector in SELECTOR.findall(expr):
            family = base_name(name)
            assert family in families, f"{rule['alert']}: {name} is not exported"
            for label in re.findall(r"(\w+)\s*(?:=~|!=|=)", selector or ""):
                assert label in families[family] | COMMON_LABELS, \
                    f"{rule['alert']}: {family} has no label {label}"
        for group_by in re.findall(r"by \(([^)]*)\)", expr):
            for label in (x.strip() for x in group_by.split(",")):
                assert any(label in labels for labels in families.values()) or \
                    label in COMMON_LABELS, f"{rule['alert']}: no metric has label {label}"


def test_every_rule_has_a_severity_and_a_summary() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]
