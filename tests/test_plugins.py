"""The plugin manager and the hook list, which polices itself."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

import indexer.plugins
from indexer import hookspecs
from indexer.config import Config
from indexer.hookspecs import hookimpl
from indexer.live import LiveListener, LiveUtterance
from indexer.plugins import Plugins, get_plugin_manager
from indexer_opensearch import OpenSearchSink
from tests.installed import PROJECT_ONLY, foreign_plugins

HOOKS = [name for name in dir(hookspecs) if name.startswith("transcript_indexer_")]


def test_there_are_hooks() -> None:
    """The spec module defines the four contribution hooks."""
    assert sorted(HOOKS) == [
        "transcript_indexer_live_listeners",
        "transcript_indexer_redaction_rules",
        "transcript_indexer_sinks",
        "transcript_indexer_validators",
    ]


def undocumented(spec: Callable[..., object]) -> list[str]:
    """What the docstring of ``spec`` lacks: a summary, ``:param x:`` per argument, ``:return:``."""
    doc = inspect.getdoc(spec) or ""
    missing = [] if doc.strip() else ["summary"]
    missing += [arg for arg in inspect.signature(spec).parameters if f":param {arg}:" not in doc]
    return missing + ([] if ":return:" in doc else ["return"])


def hooks_called(test: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The hooks called while ``test`` runs, on every plugin manager it builds."""
    called: set[str] = set()

    def monitored(*args: Any, **kwargs: Any) -> pluggy.PluginManager:
        pm = indexer.plugins.get_plugin_manager(*args, **kwargs)
        pm.add_hookcall_monitoring(lambda name, impls, kwargs: called.add(name), lambda *a: None)
        return pm

    monkeypatch.setattr(sys.modules[__name__], "get_plugin_manager", monitored)
    test()
    return called


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_documents_its_parameters(name: str) -> None:
    """Each hookspec has a docstring with :param: for every argument and a :return:."""
    assert undocumented(getattr(hookspecs, name)) == []


def test_an_undocumented_hook_is_caught() -> None:
    def transcript_indexer_example(config: Config, extra: int) -> list[object]:
        """Example.

        :param config: the settings.
        """
        return []

    assert undocumented(transcript_indexer_example) == ["extra", "return"]


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test_that_calls_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``test_hook_<name>`` exists and, run here, really calls the hook."""
    test = getattr(sys.modules[__name__], f"test_hook_{name}", None)
    assert test is not None, f"missing test_hook_{name}"
    assert name in hooks_called(test, monkeypatch)


def test_a_hook_test_that_does_not_call_its_hook_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def test_hook_without_a_call() -> None:
        Plugins(get_plugin_manager(env=PROJECT_ONLY))

    assert hooks_called(test_hook_without_a_call, monkeypatch) == set()


def test_hook_transcript_indexer_redaction_rules() -> None:
    """The installed PII plugin contributes its rules through the hook."""
    rules = Plugins(get_plugin_manager(env=PROJECT_ONLY)).redaction_rules(Config())
    assert {"pii.credit_card", "pii.iban", "pii.email"} <= {r.id for r in rules}


def test_hook_transcript_indexer_live_listeners() -> None:
    """A plugin's live listener is contributed through the hook (none of the installed
    plugins has one)."""

    class Captions:
        name = "captions"

        @hookimpl
        def transcript_indexer_live_listeners(self, config: Config) -> list[Captions]:
            return [self]

        def on_utterance(self, utterance: LiveUtterance) -> None:
            return None

    plugin = Captions()
    listeners = Plugins(get_plugin_manager(env=PROJECT_ONLY, extra=[plugin])).live_listeners(Config())
    assert listeners == [plugin] and isinstance(plugin, LiveListener)


def test_hook_transcript_indexer_validators() -> None:
    """The core's own validator is contributed like any plugin's."""
    validators = Plugins(get_plugin_manager(env=PROJECT_ONLY)).validators(Config())
    assert "core.structure" in [v.name for v in validators]


def test_hook_transcript_indexer_sinks() -> None:
    """The OpenSearch sink is contributed, configured from [plugins.opensearch]."""
    config = Config(plugins={"opensearch": {"url": "http://127.0.0.1:9", "alias": "calls"}})
    (sink,) = Plugins(get_plugin_manager(env=PROJECT_ONLY)).sinks(config)
    assert isinstance(sink, OpenSearchSink)
    assert (sink.url, sink.alias) == ("http://127.0.0.1:9", "calls")


def test_disabled_plugins_are_not_loaded() -> None:
    """INDEXER_DISABLED_PLUGINS blocks entry points by name."""
    foreign = PROJECT_ONLY["INDEXER_DISABLED_PLUGINS"]
    pm = get_plugin_manager(env={"INDEXER_DISABLED_PLUGINS": f"pii, example_rules,opensearch,{foreign}"})
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
    loaded = {name: rest for name, *rest in Plugins(get_plugin_manager(env=PROJECT_ONLY)).loaded()}
    assert loaded["pii"][0].startswith("transcript-indexer-pii ")
    assert loaded["opensearch"][0].startswith("transcript-indexer-opensearch ")
    assert loaded["example_rules"][0].startswith("transcript-indexer-example-rules ")


def test_a_rule_plugin_installed_beside_the_project_is_kept_out_of_its_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compliance team's plugin in the same environment (here a distribution on the path
    with a rule that redacts every word) is found by ``foreign_plugins`` and, disabled as
    ``conftest.py`` disables it, never loaded; the project's own plugins still are."""
    (tmp_path / "greedy_rules.py").write_text(
        "from indexer import hookimpl\n"
        "from indexer_pii import PatternRule\n"
        "import re\n"
        "@hookimpl\n"
        "def transcript_indexer_redaction_rules(config):\n"
        "    return [PatternRule(id='greedy.word', entity_type='WORD', version='1',\n"
        "                        pattern=re.compile(r'\\w+'), windowed=False)]\n"
    )
    info = tmp_path / "greedy_rules-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greedy-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[transcript_indexer]\ngreedy_rules = greedy_rules\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "greedy_rules" in foreign_plugins()
    loaded = {r.id for r in Plugins(get_plugin_manager(env={})).redaction_rules(Config())}
    assert "greedy.word" in loaded  # the fake distribution is a real plugin
    kept_out = {"INDEXER_DISABLED_PLUGINS": ",".join(foreign_plugins())}
    ours = {r.id for r in Plugins(get_plugin_manager(env=kept_out)).redaction_rules(Config())}
    assert ours == loaded - {"greedy.word"} and "example.uk_nino" in ours
