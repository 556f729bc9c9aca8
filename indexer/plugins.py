"""The plugin manager, built by a function, and the typed façade over its hooks.

Only this module touches ``pm.hook``; the rest of the worker calls :class:`Plugins`.
Environment:

- ``INDEXER_DISABLED_PLUGINS``: comma-separated entry-point names not to load.
- ``INDEXER_TRACE_PLUGINS=1``: log every hook call (names only, never arguments).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from indexer import hookspecs
from indexer.config import Config
from indexer.live import LiveListener
from indexer.pipeline import Validator
from indexer.redaction import RedactionRule
from indexer.sinks import Sink

__all__ = ["DEFAULT_PLUGINS", "Plugins", "get_plugin_manager"]

log = logging.getLogger(__name__)

#: Core plugins registered like third-party ones, last, so any plugin can add to them.
DEFAULT_PLUGINS: tuple[str, ...] = ("indexer.default_plugins",)


def get_plugin_manager(
    *,
    load_entrypoints: bool = True,
    env: Mapping[str, str] | None = None,
    extra: Iterable[object] = (),
) -> pluggy.PluginManager:
    """A plugin manager with the specs, the installed plugins and the defaults.

    :param load_entrypoints: load the ``transcript_indexer`` entry-point group.
    :param env: environment for ``INDEXER_DISABLED_PLUGINS`` / ``INDEXER_TRACE_PLUGINS``
        (default ``os.environ``).
    :param extra: more plugin objects to register (tests, embedding applications).
    :raises pluggy.PluginValidationError: a plugin implements a hook that does not exist.
    """
    import importlib

    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in env.get("INDEXER_DISABLED_PLUGINS", "").split(","))):
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for plugin in extra:
        pm.register(plugin)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if env.get("INDEXER_TRACE_PLUGINS") == "1":

        def before(hook_name: str, impls: Any, kwargs: Any) -> None:
            log.info("hook %s -> %s", hook_name, [impl.plugin_name for impl in impls])

        def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
            log.info("hook %s done", hook_name)

        pm.add_hookcall_monitoring(before, after)
    pm.check_pending()
    return pm


@attrs.frozen
class Plugins:
    """Typed calls of every hook; results from all plugins are flattened into lists."""

    pm: pluggy.PluginManager

    def redaction_rules(self, config: Config) -> list[RedactionRule]:
        """All contributed redaction rules (see the hookspec)."""
        return _flatten(self.pm.hook.transcript_indexer_redaction_rules(config=config))

    def validators(self, config: Config) -> list[Validator]:
        """All contributed validators (see the hookspec)."""
        return _flatten(self.pm.hook.transcript_indexer_validators(config=config))

    def live_listeners(self, config: Config) -> list[LiveListener]:
        """All contributed live listeners (see the hookspec)."""
        return _flatten(self.pm.hook.transcript_indexer_live_listeners(config=config))

    def sinks(self, config: Config) -> list[Sink]:
        """All contributed sinks (see the hookspec)."""
        return _flatten(self.pm.hook.transcript_indexer_sinks(config=config))

    def loaded(self) -> list[tuple[str, str, str, str]]:
        """Every registered plugin: ``(name, distribution and version, module file, hooks)``.

        The distribution is ``-`` for a plugin registered in code (the core's defaults);
        hooks are the short names (``redaction_rules``), comma-separated.
        """
        result = []
        for name, plugin in self.pm.list_name_plugin():
            dist = next((d for p, d in self.pm.list_plugin_distinfo() if p is plugin), None)
            hooks = sorted(
                caller.name.removeprefix(f"{hookspecs.PROJECT}_")
                for caller in self.pm.get_hookcallers(plugin) or []
            )
            result.append(
                (
                    name,
                    f"{dist.project_name} {dist.version}" if dist else "-",
                    str(getattr(plugin, "__file__", None) or type(plugin).__qualname__),
                    ",".join(hooks),
                )
            )
        return result


def _flatten(results: Iterable[Iterable[Any] | None]) -> list[Any]:
    return [item for result in results if result for item in result]
