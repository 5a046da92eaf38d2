"""A plugin's own settings: declared in its plugin.yaml, read once at its entry point.

```yaml
settings:
  - name: APT_OLLAMA_URL
    type: url
    default: ""
    help: The Ollama server an export creates models on when the request names none.
```

The declaration is the whole contract. The plugin's service tolerates exactly these variables
besides the shared ones (``Settings.from_env``), the gateway tolerates those of every plugin of
its catalogue and hands each plugin exactly its own from the gateway's environment (every
deployer: local, docker, compose, kubernetes), and ``plugin_settings`` gives the plugin typed
values. Names are ``APT_<UPPER_SNAKE>`` and never one of the platform's own variables
(``SHARED_VARIABLES``): a declared variable is passed on, so declaring ``APT_ADMIN_TOKEN`` must
not be a way to receive the admin token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from apt_model import errors
from apt_model.runtime.settings import SHARED_VARIABLES

NAME_RE = re.compile(r"^APT_[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
_KEYS = {"name", "type", "default", "help"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"use one of {', '.join(_TRUE + _FALSE)}")
    return value in _TRUE


def _url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("use an http:// or https:// URL with a host, such as http://127.0.0.1:11434")
    return raw.strip().rstrip("/")


# type name in plugin.yaml -> parser of the variable's text (ValueError says what is wrong)
TYPES = {"str": str, "int": int, "float": float, "bool": _bool, "url": _url}


@dataclass(frozen=True)
class SettingSpec:
    """One declared environment variable of a plugin."""
    name: str     # APT_<UPPER_SNAKE>
    type: str     # one of TYPES
    default: Any  # the typed value used when the variable is unset or empty
    help: str     # what it does, for docs and errors

    def parse(self, raw: str | None) -> Any:
        """The typed value of ``raw``; unset or empty gives the default (compose and the
        Kubernetes ConfigMap write an unset setting as an empty one)."""
        if raw is None or not raw.strip():
            return self.default
        try:
            return TYPES[self.type](raw)
        except ValueError as exc:
            raise errors.InvalidArgument(f"{self.name}={raw!r} is not a valid {self.type}: {exc}.") from exc


def _yaml_text(value: Any) -> str | None:
    """A default as YAML parsed it, back to the text an environment variable would hold."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def declared_settings(raw: Any, path: Path) -> tuple[SettingSpec, ...]:
    """The ``settings:`` list of a plugin.yaml, checked (FailedPrecondition naming the file)."""
    def bad(message: str) -> errors.FailedPrecondition:
        return errors.FailedPrecondition(f"{path}: settings: {message}")

    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad(f"must be a list of {{name, type, default, help}}, not {raw!r}.")
    specs: dict[str, SettingSpec] = {}
    for item in raw:
        if not isinstance(item, dict) or set(item) - _KEYS or "name" not in item:
            raise bad(f"{item!r}: each entry is a mapping with name and optionally "
                      f"{', '.join(sorted(_KEYS - {'name'}))}.")
        name, kind = item["name"], item.get("type", "str")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise bad(f"{name!r} is not a name such as APT_OLLAMA_URL (APT_ then upper-case words joined by _).")
        if name in SHARED_VARIABLES:
            raise bad(f"{name} is one of the platform's own variables (apt_model/runtime/settings.py), which no "
                      "plugin may declare: the gateway passes a plugin its declared variables. Pick a name of "
                      "the plugin's own, such as APT_<PLUGIN>_<WHAT>.")
        if name in specs:
            raise bad(f"{name} is declared twice.")
        if kind not in TYPES:
            raise bad(f"{name}: type {kind!r} is not one of {', '.join(TYPES)}.")
        # unset: text settings read "", others None (the plugin decides what "not set" means)
        spec = SettingSpec(name, kind, "" if kind in ("str", "url") else None, str(item.get("help", "")))
        try:
            specs[name] = replace(spec, default=spec.parse(_yaml_text(item.get("default"))))
        except errors.AptError as exc:
            raise bad(f"default: {exc.message}") from None
    return tuple(specs.values())


def plugin_settings(manifest, env: Mapping[str, str]) -> dict[str, Any]:
    """Variable name -> typed value of every setting ``manifest`` declares, read from ``env``
    (the default where unset or empty); InvalidArgument naming the variable for a bad value."""
    return {spec.name: spec.parse(env.get(spec.name)) for spec in manifest.settings}
