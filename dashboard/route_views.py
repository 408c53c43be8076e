"""The routes editor: providers and rules, create/edit/reorder/delete, explain, dry run.

Every edit goes through proxy.routing.snapshot.config_edit(): the whole configuration is validated inside the
transaction (rolled back with the problems shown inline) and the version bump makes every process
re-read it before its next request.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, cast

import orjson
from asgiref.sync import sync_to_async
from django.db.models import ProtectedError
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import retarget

from dashboard import dryrun
from dashboard.forms import ExplainForm, ProviderForm, RuleForm
from dashboard.htmx import HtmxHttpRequest
from proxy.models import Exchange, Provider, Rule
from proxy.routing import presets, snapshot
from proxy.routing.order import OrderWarning, order_warnings
from proxy.security import access
from proxy.translate.dialects import dialect_names
from proxy.translate.types import MessagesRequest

PAGE = "dashboard/routes.html"
ID = re.compile(r"[0-9]{1,18}")  # an id that fits the database's 64-bit integer
FORM_PAGE = "dashboard/route_form.html"


@dataclass(frozen=True, slots=True)
class RuleRow:
    """A rule as the routes page lists it: where it stands among the rules tried, what it may do."""

    rule: Rule
    shown_position: int
    can_move_up: bool
    can_move_down: bool
    order_warnings: list[OrderWarning]


def _config_context() -> dict[str, Any]:
    # In the order they are tried (the default last, wherever its position), numbered as shown.
    rules = list(Rule.objects.select_related("provider").order_by("is_default", "position", "id"))
    movable = [r for r in rules if not r.is_default]
    warnings = order_warnings([snapshot.rule_spec(r) for r in rules])
    rows = [
        RuleRow(
            rule,
            shown_position=index + 1,
            can_move_up=not rule.is_default and index > 0,
            can_move_down=not rule.is_default and index < len(movable) - 1,
            order_warnings=[w for w in warnings if w.rule == rule.name],
        )
        for index, rule in enumerate(rules)
    ]
    return {"rules": rows, "providers": Provider.objects.order_by("name"),
            "order_warnings": [w.message for w in warnings]}  # fmt: skip


def _config_response(request: HtmxHttpRequest) -> HttpResponse:
    if not request.htmx:
        return redirect("/routes")
    return render(request, PAGE + "#config", _config_context())


def routes_page(request: HtmxHttpRequest) -> HttpResponse:
    exchange = request.GET.get("exchange", "")
    initial = {"exchange": int(exchange)} if ID.fullmatch(exchange) else {}
    notes = [] if initial or not exchange else [f"exchange: {exchange[:60]!r} is not an exchange id; ignored"]
    context = {**_config_context(), "explain_form": ExplainForm(initial=initial), "param_notes": notes}
    return render(request, PAGE, context)


def _place(saved: Rule) -> None:
    """Dense positions in the order tried: `saved` at the index it was saved with, the default last.

    The form's position is 1-based as shown (RuleForm stores it 0-based): a rule saved at 1 is first.
    """
    others = list(Rule.objects.exclude(pk=saved.pk).only("id", "position", "is_default"))
    order = sorted((r for r in others if not r.is_default), key=lambda r: (r.position, r.pk))
    defaults = sorted((r for r in others if r.is_default), key=lambda r: (r.position, r.pk))
    if saved.is_default:
        defaults.append(saved)
    else:
        order.insert(max(0, min(saved.position, len(order))), saved)
    for position, rule in enumerate(order + defaults):
        Rule.objects.filter(pk=rule.pk).exclude(position=position).update(position=position)


def _save(form: RuleForm | ProviderForm, request: HtmxHttpRequest) -> bool:
    """Save inside a validated configuration edit; on failure the problems land on the form."""
    if not form.is_valid():
        return False
    creating = form.instance.pk is None
    try:
        with snapshot.config_edit(actor=access.actor(request)):
            saved = form.save()
            if isinstance(saved, Rule):
                _place(saved)
    except snapshot.ConfigError as exc:
        for problem in exc.problems:
            form.add_error(None, problem)
        if creating:
            form.instance.pk = None  # the row was rolled back
        return False
    return True


def _form_response(
    request: HtmxHttpRequest,
    form: Any,
    *,
    kind: str,
    action: str,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    key = form.instance.pk or "new"
    partial = PAGE + f"#{kind}-form"
    context = {"form": form, "action": action, "key": key, "kind": kind, "partial": partial, **(extra or {})}
    # htmx swaps the bare form into the routes page; a link opened on its own gets a whole page.
    response = render(request, partial if request.htmx else FORM_PAGE, context, status=status)
    # A form with errors replaces itself, not the whole configuration.
    return (
        retarget(response, f"#{kind}-form-{key}") if request.htmx and request.method == "POST" else response
    )


@access.admin_only
def rule_form(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=pk) if pk else None
    action = f"/routes/rules/{pk}" if pk else "/routes/rules/new"
    if request.method != "POST":
        # A new rule goes just above the default: the last place a rule with conditions can be reached.
        initial = {} if rule else {"position": Rule.objects.filter(is_default=False).count() + 1}
        return _form_response(request, RuleForm(instance=rule, initial=initial), kind="rule", action=action)
    form = RuleForm(request.POST, instance=rule)
    if _save(form, request):
        return _config_response(request)
    return _form_response(request, form, kind="rule", action=action)


@access.admin_only
def provider_form(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk) if pk else None
    action = f"/routes/providers/{pk}" if pk else "/routes/providers/new"
    # A new provider may start from a preset: choosing one refills the form (an htmx GET with ?preset=).
    chosen = (
        None if provider else presets.preset_for(request.GET.get("preset") or request.POST.get("preset", ""))
    )
    extra = {"presets": presets.available(dialect_names()), "preset": chosen} if not provider else {}
    if request.method != "POST":
        initial: dict[str, Any] = {}
        if chosen is not None:
            taken = set(Provider.objects.values_list("name", flat=True))
            initial = presets.form_initial(chosen, taken=taken, environ=dict(os.environ))
        form = ProviderForm(instance=provider, initial=initial)
        return _form_response(request, form, kind="provider", action=action, extra=extra)
    form = ProviderForm(request.POST, instance=provider)
    if _save(form, request):
        return _config_response(request)
    return _form_response(request, form, kind="provider", action=action, extra=extra)


@require_POST
@access.admin_only
def rule_move(request: HtmxHttpRequest, pk: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        return HttpResponseBadRequest("direction: up or down")
    if not Rule.objects.filter(pk=pk).exists():
        raise Http404("no such rule")
    with snapshot.config_edit(actor=access.actor(request)):
        rules = list(Rule.objects.select_for_update().order_by("is_default", "position", "id"))
        movable = [r for r in rules if not r.is_default]  # the default stays last: it is tried last
        index = next((i for i, r in enumerate(movable) if r.pk == pk), None)
        other = -1 if index is None else (index - 1 if direction == "up" else index + 1)
        if index is not None and 0 <= other < len(movable):
            movable[index], movable[other] = movable[other], movable[index]
        for position, rule in enumerate(movable + [r for r in rules if r.is_default]):
            Rule.objects.filter(pk=rule.pk).exclude(position=position).update(position=position)
    return _config_response(request)


@require_POST
@access.admin_only
def rule_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    try:
        with snapshot.config_edit(actor=access.actor(request)):
            Rule.objects.filter(pk=pk).delete()
    except snapshot.ConfigError as exc:
        return _error(request, exc.problems)
    return _config_response(request)


@require_POST
@access.admin_only
def provider_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    try:
        with snapshot.config_edit(actor=access.actor(request)):
            Provider.objects.filter(pk=pk).delete()
    except ProtectedError:
        return _error(request, ["rules still use this provider: point them elsewhere first"])
    except snapshot.ConfigError as exc:
        return _error(request, exc.problems)
    return _config_response(request)


def _error(request: HtmxHttpRequest, problems: list[str]) -> HttpResponse:
    response = render(request, PAGE + "#config", {**_config_context(), "problems": problems})
    return response if request.htmx else HttpResponse(response.content, status=400)


@require_POST
def rule_dry_run(request: HtmxHttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=pk) if pk else None
    form = RuleForm(request.POST, instance=rule)
    context: dict[str, Any] = {"key": pk or "new"}
    if not form.is_valid():
        context["problems"] = [f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items()]
        return render(request, PAGE + "#dry-run", context)
    spec = snapshot.rule_spec(form.save(commit=False))  # the edited rule, unsaved
    _, rules = snapshot.load_specs()
    candidate = dryrun.with_rule(rules, spec, replaces=rule.name if rule else None,
                                 position=form.cleaned_data.get("position"))  # fmt: skip
    try:
        context["result"] = dryrun.dry_run(candidate)
    except snapshot.ConfigError as exc:
        context["problems"] = exc.problems
    return render(request, PAGE + "#dry-run", context)


def _explain_body(form: ExplainForm) -> tuple[dict[str, Any] | None, dict[str, str], str]:
    if form.cleaned_data.get("exchange"):
        e = (
            Exchange.objects.filter(pk=form.cleaned_data["exchange"])
            .only("client_request", "client_headers")
            .first()
        )
        if e is None or not isinstance(e.client_request, dict):
            return None, {}, "no stored request with that id"
        return e.client_request, dict(e.client_headers or {}), ""
    try:
        body = orjson.loads(form.cleaned_data.get("body") or "")
    except orjson.JSONDecodeError as exc:
        return None, {}, f"not valid JSON: {exc}"
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return None, {}, "expected a Messages request object with a model"
    return body, {}, ""


async def explain(request: HtmxHttpRequest) -> HttpResponse:
    form = ExplainForm(request.POST or None)
    context: dict[str, Any] = {}
    if request.method == "POST" and not await sync_to_async(form.is_valid)():
        context["problem"] = " ".join(f"{k}: {' '.join(map(str, v))}" for k, v in form.errors.items())
    elif request.method == "POST":
        body, headers, problem = await sync_to_async(_explain_body)(form)
        if body is not None:
            try:
                # A body the form checked names a model (_explain_body); routing reads it as a request.
                decision = await snapshot.decide(cast(MessagesRequest, body), headers)
                context["decision"] = decision
                context["model"] = body["model"]
                _, rules = await sync_to_async(snapshot.load_specs)()
                context["position"] = snapshot.rule_position(rules, decision.rule)
                context["rule_count"] = len(rules)
                context["warnings"] = [w.message for w in order_warnings(rules) if w.rule == decision.rule]
            except Exception as exc:  # TranslationError: no rule serves it; shown, not raised
                problem = str(getattr(exc, "message", exc))
        context["problem"] = problem
    return await sync_to_async(render)(request, PAGE + "#explain-result", context)


@require_POST
async def rule_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    from dashboard import replay  # the proxy's serving path, imported only when a test is asked for

    name = await Rule.objects.filter(pk=pk).values_list("name", flat=True).afirst()
    check = await replay.test_rule_target(name or "")
    return await sync_to_async(render)(request, PAGE + "#target-check", {"check": check})
