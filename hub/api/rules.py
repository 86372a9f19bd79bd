"""`POST /v1/rules/reload` and `POST /v1/rules/test` (dry run): DESIGN section 6."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub import keys
from hub.access.auth import Scope, requires
from hub.automation.runtime import NoRulesDir, clock_of, reload_rules
from hub.http_errors import error_response, json_response
from rules import RulesError, SampleError, evaluate, loads_ruleset, parse_sample
from schemas import CHANNELS_KEY

routes = web.RouteTableDef()


def _issues_response(exc: RulesError, message: str, running: str | None) -> web.Response:
    issues = [issue.to_dict() for issue in exc.issues]
    fields = [{"field": f"{i.file}:{i.line}", "message": str(i)} for i in exc.issues]
    body: dict[str, Any] = {"error": "rules_invalid", "message": message, "issues": issues,
                            "fields": fields, "running_version": running}
    return json_response(body, status=422)


@routes.post("/v1/rules/reload")
@requires(Scope.RULES_ADMIN)
async def post_reload(request: web.Request) -> web.Response:
    app = request.app
    running = app[keys.RULES].ruleset
    version = running.version if running is not None else None
    try:
        ruleset = await reload_rules(app)
    except NoRulesDir as exc:
        return error_response(409, "no_rules_dir", str(exc), [{"field": "rules_dir", "message": str(exc)}])
    except RulesError as exc:
        return _issues_response(exc, f"{len(exc.issues)} error(s); the running rules ({version}) stay", version)
    return json_response({
        "version": ruleset.version, "previous_version": version, "rules": len(ruleset.rules),
        "files": list(ruleset.files), "timezone": ruleset.timezone, "warnings": ruleset.warnings,
    })


def _sample_field(message: str) -> str:
    """SampleError messages start with, or name, the key at fault."""
    head = message.split(":", 1)[0].split(" ", 1)[0]
    return head if head in ("trigger", "interaction", "profile", "task", "now") else "body"


@routes.post("/v1/rules/test")
@requires(Scope.RULES_ADMIN)
async def post_test(request: web.Request) -> web.Response:
    """Evaluate a sample against the running rules, or against `rules` (YAML text) in the body."""
    app = request.app
    data = json.loads(await request.read() or b"null")
    if not isinstance(data, dict):
        return error_response(422, "validation_failed", "the body must be a JSON object",
                              [{"field": "body", "message": "expected a JSON object"}])
    channels = app[keys.VALIDATION_CONTEXT][CHANNELS_KEY]
    inline = data.pop("rules", None)
    if inline is not None:
        if not isinstance(inline, str):
            return error_response(422, "validation_failed", "rules must be YAML text",
                                  [{"field": "rules", "message": "expected a string of YAML"}])
        try:
            ruleset = loads_ruleset(inline, file="rules", channels=channels)
        except RulesError as exc:
            return _issues_response(exc, f"{len(exc.issues)} error(s) in the inline rules", None)
    else:
        ruleset = app[keys.RULES].ruleset
        if ruleset is None:
            message = "no rules are running; configure rules_dir or pass `rules` (YAML) in the body"
            return error_response(409, "no_rules", message, [{"field": "rules", "message": message}])
    try:
        sample = parse_sample(data, default_now=clock_of(app)(), region=app[keys.SETTINGS].default_region,
                              channels=channels)
    except SampleError as exc:
        field = _sample_field(str(exc))
        return error_response(422, "validation_failed", str(exc), [{"field": field, "message": str(exc)}])
    result = evaluate(ruleset, sample.trigger, **sample.inputs())
    body = result.to_dict()
    body["explain"] = [
        f"{'MATCHED' if t.matched else 'no match'}: {t.name}"
        + "".join(f"; because {f}" for f in t.failures)
        for t in result.trace
    ]
    return json_response(body)

