"""One settings tree: every documented FULEMA_* variable lands in its place in the tree, and
every knob of the tree is documented. The variables are read once, when an entry point builds
`Settings()`; nothing else reads the environment (the last test greps the source for it)."""

from __future__ import annotations

import json
import re
import typing
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fulema.core.channel_settings import Section
from fulema.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
NAME = re.compile(r"FULEMA_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])")
# read by one command for one run, as typer's envvar of an option (merchants/users_cli.py)
COMMAND_INPUTS = {"FULEMA_NEW_PASSWORD"}
TABLE_OF = re.compile(r"\(`(FULEMA_[A-Z0-9_]+_)\*`")  # "## Settings (`FULEMA_ALIPAY_*`, ..."


def _prefix(section: type[BaseModel]) -> str:
    return str(section.model_config.get("env_prefix", "")).upper()


SECTIONS: dict[str, str] = {  # env prefix -> the tree's attribute
    _prefix(typing.cast(type[BaseModel], Settings.model_fields[name].annotation)): name
    for name in Settings.model_fields
    if isinstance(Settings.model_fields[name].annotation, type)
    and issubclass(typing.cast(type, Settings.model_fields[name].annotation), Section)}


def _table_names(text: str) -> set[str]:
    """The variables a settings table lists by their short names under a FULEMA_<X>_* header."""
    found: set[str] = set()
    prefix, in_table = "", False
    for line in text.splitlines():
        header = TABLE_OF.search(line)
        if header:
            prefix, in_table = header.group(1), line.startswith("|")
            continue
        if prefix and line.startswith("|"):
            in_table = True
            first = line.split("|")[1]
            for short in re.findall(r"`([A-Z][A-Z0-9_]*)`", first):
                found.add(short if short.startswith("FULEMA_") else prefix + short)
        elif in_table:
            prefix, in_table = "", False
    return found


def documented() -> set[str]:
    names: set[str] = set()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        names |= set(NAME.findall(text)) | _table_names(text)
    # the suite's and the benchmark's variables, and a command's input, are not the app's settings
    return {n for n in names if not n.startswith(("FULEMA_TEST_", "FULEMA_BENCH_", "FULEMA_PGBENCH_"))
            and n not in COMMAND_INPUTS}


def place(variable: str) -> tuple[str | None, str]:
    """(section attribute or None for the root, field) a variable sets: the longest prefix."""
    for prefix in sorted(SECTIONS, key=len, reverse=True):
        if variable.startswith(prefix):
            return SECTIONS[prefix], variable.removeprefix(prefix).lower()
    return None, variable.removeprefix("FULEMA_").lower()


def every_variable() -> set[str]:
    names = {f"FULEMA_{f.upper()}" for f in Settings.model_fields
             if place(f"FULEMA_{f.upper()}")[0] is None and f not in SECTIONS.values()}
    for prefix, attr in SECTIONS.items():
        section = typing.cast(type[BaseModel], Settings.model_fields[attr].annotation)
        names |= {prefix + f.upper() for f in section.model_fields}
    return names


JSON_SAMPLES: dict[str, Any] = {
    "enabled_channels": ["bankpay"], "notify_schedule_seconds": [1, 2, 3],
    "message_retry_seconds": [5, 60],
    "outbound_allow_hosts": ["notify-test.bank.example"], "outbound_allow_loopback": False,
    "ua_markers": {"bankpay": ["MyBankApp"]},
    "payer_code_rules": {"bankpay": {"prefixes": ["88"], "lengths": [18]}},
    "trusted_proxies": ["10.1.2.3"], "worker_consumers": ["messaging.*"],
    "dr_nodes": ["postgresql://postgres@db1:5432/f", "postgresql://postgres@db2:5432/f"],
    "crypto_previous_master_keys": {"m0": "MDEyMzQ1Njc4OWFiY2RlZg=="},
}


def sample(model: type[BaseModel], field: str) -> tuple[str, Any]:
    """A valid value unlike the default, as the variable's text and as the tree should hold it."""
    info = model.model_fields[field]
    default = info.get_default(call_default_factory=True)
    args = typing.get_args(info.annotation)
    if field in JSON_SAMPLES:
        return json.dumps(JSON_SAMPLES[field]), JSON_SAMPLES[field]
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        return str(default + 1), default + 1
    if isinstance(default, float):
        return str(default / 2), default / 2
    if info.annotation is float or float in args:
        return "2.5", 2.5
    if info.annotation is time:  # a time of day, e.g. the settlement cut-off
        return "22:00", time(22, 0)
    if info.annotation is Path or Path in args:
        return f"/srv/keys/{field}", Path(f"/srv/keys/{field}")
    if args and all(isinstance(a, str) for a in args):  # a Literal
        choice = next(a for a in args if a != default)
        return choice, choice
    return f"set-{field}", f"set-{field}"


@pytest.mark.parametrize("variable", sorted(documented()))
def test_each_documented_variable_lands_in_the_tree(monkeypatch: pytest.MonkeyPatch,
                                                    variable: str) -> None:
    attr, field = place(variable)
    model: type[BaseModel] = (Settings if attr is None else typing.cast(
        type[BaseModel], Settings.model_fields[attr].annotation))
    assert field in model.model_fields, f"{variable} is documented but is no setting"
    text, expected = sample(model, field)
    monkeypatch.setenv(variable, text)

    tree = Settings()  # what an entry point does, once

    node = tree if attr is None else getattr(tree, attr)
    assert getattr(node, field) == expected


def test_every_setting_in_the_tree_is_documented() -> None:
    assert sorted(every_variable() - documented()) == []


def test_the_tree_has_every_channel_and_the_cross_cutting_sections() -> None:
    assert set(SECTIONS.values()) == {"wechat", "wechat_v2", "alipay", "unionpay", "ecny",
                                      "bankpay", "oauth", "breaker", "ratelimit"}
    assert SECTIONS["FULEMA_WECHAT_V2_"] == "wechat_v2"  # not FULEMA_WECHAT_ + "v2_..."


def test_a_test_builds_its_own_tree_without_touching_the_environment() -> None:
    from fulema.core.channel_settings import WechatSection

    tree = Settings(environment="test", wechat=WechatSection(mchid="1900000109"))
    assert tree.wechat.mchid == "1900000109"
    assert Settings(environment="test").wechat.mchid == "1900000001"  # nothing leaked


def test_nothing_but_the_entry_points_reads_the_environment() -> None:
    """Settings() / get_settings() only where a process starts: the app factory, the CLI, the
    benchmark; and the sandboxes until they have their own configuration (issue 7, part 3)."""
    allowed = {"src/fulema/app.py", "src/fulema/cli.py", "src/fulema/cli_dr.py",
               "src/fulema/gateway/cli.py", "src/fulema/core/config.py"}
    call = re.compile(r"\b\w*(?:Settings|Section)\(\)|\bget_settings\(\)|os\.environ|os\.getenv")
    offenders = []
    for path in sorted((ROOT / "src" / "fulema").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed or rel.startswith("src/fulema/sandbox/"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if call.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_a_misspelt_keyword_is_refused_while_foreign_variables_are_ignored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that builds Settings by keyword must name real settings (a typo would otherwise
    silently be the default); the environment may hold anything."""
    with pytest.raises(TypeError, match="ratelimit_enabled"):
        Settings(ratelimit_enabled=False)
    monkeypatch.setenv("FULEMA_NOT_A_SETTING", "1")
    assert Settings(port=8123).port == 8123
