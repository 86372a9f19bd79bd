"""Message templates: what a rule's `send_message`/`auto_reply`, a `message.send` command and
`POST /v1/messages` with `template` turn into text (DESIGN section 8).

Templates come from the config (`templates:`) and from YAML files in `templates_dir`, one mapping of
name -> template per file. A template holds one variant per channel and an optional `default`:

    order-shipped:
      sms: "{{ profile.display_name }}님, 주문 {{ order_id }} 발송되었습니다."
      email: {subject: "주문 {{ order_id }} 발송", text: "...", html: "<p>...</p>"}

Rendering is Jinja2 in its sandbox (a template is configuration, not code: it may read the values it
is given, never call into the hub), with StrictUndefined so a missing variable fails the message
with its name instead of sending a blank; HTML parts are autoescaped. Every template is compiled at
start-up, so a syntax error stops the hub with the template's name rather than failing a send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from schemas import OmnihubError

DEFAULT_VARIANT = "default"
_PARTS = ("subject", "text", "html")


class TemplateProblem(OmnihubError):
    """A template that cannot be used: `field` names what is wrong (template, variables.x, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str | None
    html: str | None


class TemplateSet:
    """Compiled templates by name and channel."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self._plain = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._html = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        self._variants: dict[str, dict[str, dict[str, Any]]] = {}
        for name, definition in definitions.items():
            if not isinstance(definition, Mapping) or not definition:
                raise TemplateProblem(f"templates.{name}", "a template maps channels (or `default`) to their text")
            self._variants[str(name)] = {
                str(channel): self._compile(f"templates.{name}.{channel}", variant)
                for channel, variant in definition.items()
            }

    @classmethod
    def load(cls, inline: Mapping[str, Any] | None, directory: str | None) -> TemplateSet:
        """The config's `templates:` and every *.yaml/*.yml file in `directory` (a name defined
        twice is an error: which one a message gets must not depend on file order)."""
        merged: dict[str, Any] = dict(inline or {})
        if directory:
            root = Path(directory)
            if not root.is_dir():
                raise TemplateProblem("templates_dir", f"{directory} is not a directory")
            for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
                try:
                    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                except yaml.YAMLError as exc:
                    raise TemplateProblem(str(path), f"not valid YAML: {exc}") from None
                if not isinstance(loaded, Mapping):
                    raise TemplateProblem(str(path), "a templates file maps template names to templates")
                for name, definition in loaded.items():
                    if name in merged:
                        raise TemplateProblem(f"{path}: {name}", "this template is defined twice")
                    merged[name] = definition
        return cls(merged)

    def names(self) -> list[str]:
        return sorted(self._variants)

    def has(self, name: str) -> bool:
        return name in self._variants

    def carries(self, name: str, channel: str) -> bool:
        """Whether `name` has a variant for `channel` (its own or the default)."""
        variants = self._variants.get(name, {})
        return channel in variants or DEFAULT_VARIANT in variants

    def render(self, name: str, channel: str, values: Mapping[str, Any]) -> Rendered:
        variants = self._variants.get(name)
        if variants is None:
            known = ", ".join(self.names()) or "none configured"
            raise TemplateProblem("template", f"no template {name!r}; known: {known}")
        variant = variants.get(channel) or variants.get(DEFAULT_VARIANT)
        if variant is None:
            raise TemplateProblem("template", f"template {name!r} has no {channel!r} or default variant")
        out: dict[str, str | None] = {}
        for part in _PARTS:
            compiled = variant.get(part)
            try:
                out[part] = None if compiled is None else compiled.render(values).strip()
            except UndefinedError as exc:
                # "'order_id' is undefined": the variable the caller did not give.
                raise TemplateProblem("variables", f"template {name!r} ({channel}, {part}): {exc.message}") from None
            except TemplateError as exc:
                raise TemplateProblem("template", f"template {name!r} ({channel}, {part}) failed: {exc}") from None
        return Rendered(out["subject"], out["text"], out["html"])

    def _compile(self, where: str, variant: Any) -> dict[str, Any]:
        parts = {"text": variant} if isinstance(variant, str) else variant
        if not isinstance(parts, Mapping) or not parts or set(parts) - set(_PARTS):
            raise TemplateProblem(where, "a variant is a text, or a mapping of subject, text and html")
        if not (parts.get("text") or parts.get("html")):
            raise TemplateProblem(where, "a variant needs `text` or `html`")
        compiled = {}
        for part, source in parts.items():
            if source is None:
                continue
            if not isinstance(source, str):
                raise TemplateProblem(f"{where}.{part}", "must be text")
            env = self._html if part == "html" else self._plain
            try:
                compiled[part] = env.from_string(source)
            except TemplateError as exc:
                raise TemplateProblem(f"{where}.{part}", f"not a valid template: {exc}") from None
        return compiled


def template_values(variables: Mapping[str, Any], profile: Mapping[str, Any] | None,
                    interaction: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a template sees: the caller's variables, plus `profile` and `interaction` when known."""
    values = dict(variables)
    if profile is not None:
        values["profile"] = {k: v for k, v in profile.items() if k not in ("consents", "erased_at", "merged_into")}
    if interaction is not None:
        values["interaction"] = interaction
    return values
