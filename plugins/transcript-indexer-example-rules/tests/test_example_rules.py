"""The example rule: what it redacts, what survives, and that the worker loads it."""

from __future__ import annotations

import pytest

from example_rules import nino_rule, nino_valid
from indexer.config import Config
from indexer.plugins import Plugins, get_plugin_manager
from indexer.redaction import RuleSet
from tests.installed import PROJECT_ONLY

RULES = RuleSet((nino_rule(),))


def redact(text: str) -> str:
    return RULES.redact_text(text)[0]


@pytest.mark.parametrize(
    "text",
    [
        "my national insurance number is AB123456C",
        "my National Insurance number is AB 12 34 56 C thanks",
        "NI number: ab 12 34 56 c",
        "national insurance number is a b one two three four five six c",  # as a recogniser writes it
        "my nino is j g one two double three four five d",
    ],
)
def test_a_nino_after_its_context_words_is_redacted(text: str) -> None:
    redacted = redact(text)
    assert "[UK_NINO]" in redacted
    assert not any(piece in redacted.lower() for piece in ("123456", "12 34 56", "three four"))


@pytest.mark.parametrize(
    "text",
    [
        "the part number is AB123456C",  # no context words
        "national insurance number QQ 12 34 56 C",  # the placeholder: QQ is never allocated
        "national insurance number GB123456A",  # GB is not allocated
        "national insurance number AB123456E",  # suffix is A-D
        "national insurance number AB12345C",  # five digits
    ],
)
def test_look_alikes_survive(text: str) -> None:
    assert redact(text) == text


def test_the_validator_follows_the_allocation_rules() -> None:
    assert nino_valid("AB123456C") and nino_valid("ce123456a")
    assert not any(nino_valid(v) for v in ("DA123456A", "AO123456A", "NT123456A", "ZZ123456A"))


def test_without_context_the_shape_and_prefix_suffice() -> None:
    assert RuleSet((nino_rule(context=False),)).redact_text("code AB123456C")[0] == "code [UK_NINO]"


def test_the_worker_loads_it_and_its_setting() -> None:
    """Installed, the plugin's rule reaches the worker; ``[plugins.example_rules]`` configures it."""
    plugins = Plugins(get_plugin_manager(env=PROJECT_ONLY))
    (rule,) = [r for r in plugins.redaction_rules(Config()) if r.id == "example.uk_nino"]
    assert rule.version == "1"
    config = Config(plugins={"example_rules": {"context": False}})
    (rule,) = [r for r in plugins.redaction_rules(config) if r.id == "example.uk_nino"]
    assert rule.version == "1-nocontext"
