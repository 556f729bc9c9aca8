"""The plugin manager and the hook list, which polices itself."""

from __future__ import annotations

import inspect
import sys

import pluggy
import pytest

from indexer import hookspecs
from indexer.config import Config
from indexer.hookspecs import hookimpl
from indexer.plugins import Plugins, get_plugin_manager
from indexer_opensearch import OpenSearchSink

HOOKS = [name for name in dir(hookspecs) if name.startswith("transcript_indexer_")]


def test_there_are_hooks() -> None:
    """The spec module defines the three contribution hooks."""
    assert sorted(HOOKS) == [
        "transcript_indexer_redaction_rules",
        "transcript_indexer_sinks",
        "transcript_indexer_validators",
    ]


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_documents_its_parameters(name: str) -> None:
    """Each hookspec has a docstring with :param: for every argument and a :return:."""
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    for arg in inspect.signature(spec).parameters:
        assert f":param {arg}:" in doc, f"{name} does not document {arg}"
    assert ":return:" in doc


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name: str) -> None:
    """A test named test_hook_<name> exists for every hook."""
    module = sys.modules[__name__]
    assert hasattr(module, f"test_hook_{name}"), f"missing test_hook_{name}"


def test_hook_transcript_indexer_redaction_rules() -> None:
    """The installed PII plugin contributes its rules through the hook."""
    rules = Plugins(get_plugin_manager(env={})).redaction_rules(Config())
    assert {"pii.credit_card", "pii.iban", "pii.email"} <= {r.id for r in rules}


def test_hook_transcript_indexer_validators() -> None:
    """The core's own validator is contributed like any plugin's."""
    validators = Plugins(get_plugin_manager(env={})).validators(Config())
    assert "core.structure" in [v.name for v in validators]


def test_hook_transcript_indexer_sinks() -> None:
    """The OpenSearch sink is contributed, configured from [plugins.opensearch]."""
    config = Config(plugins={"opensearch": {"url": "http://127.0.0.1:9", "alias": "calls"}})
    (sink,) = Plugins(get_plugin_manager(env={})).sinks(config)
    assert isinstance(sink, OpenSearchSink)
    assert (sink.url, sink.alias) == ("http://127.0.0.1:9", "calls")


def test_disabled_plugins_are_not_loaded() -> None:
    """INDEXER_DISABLED_PLUGINS blocks entry points by name."""
    pm = get_plugin_manager(env={"INDEXER_DISABLED_PLUGINS": "pii, opensearch"})
    assert Plugins(pm).redaction_rules(Config()) == []
    assert Plugins(pm).sinks(Config()) == []


def test_a_misspelt_hook_fails_loudly() -> None:
    """An implementation that matches no spec is rejected at start-up."""

    class Typo:
        @hookimpl
        def transcript_indexer_redaction_rule(self, config: Config) -> list[object]:
            return []

    with pytest.raises(pluggy.PluginValidationError):
        get_plugin_manager(load_entrypoints=False, extra=[Typo()])


def test_plugins_list_names_the_distributions() -> None:
    """``plugins list`` data: entry-point plugins come with their distribution and version."""
    loaded = dict(Plugins(get_plugin_manager(env={})).loaded())
    assert loaded["pii"].startswith("transcript-indexer-pii ")
    assert loaded["opensearch"].startswith("transcript-indexer-opensearch ")
