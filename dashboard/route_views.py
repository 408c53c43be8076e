"""The routes editor: providers and rules, create/edit/reorder/delete, explain, dry run.

Every edit goes through proxy.routing.config_edit(): the whole configuration is validated inside the
transaction (rolled back with the problems shown inline) and the version bump makes every process
re-read it before its next request.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db.models import ProtectedError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import retarget

from dashboard import dryrun
from dashboard.forms import ExplainForm, ProviderForm, RuleForm
from proxy import access, routing
from proxy.models import Exchange, Provider, Rule

PAGE = "dashboard/routes.html"
ID = re.compile(r"[0-9]{1,18}")  # an id that fits the database's 64-bit integer
FORM_PAGE = "dashboard/route_form.html"


def _config_context() -> dict[str, Any]:
    return {"rules": Rule.objects.select_related("provider").order_by("position", "id"),
            "providers": Provider.objects.order_by("name")}  # fmt: skip


def _config_response(request: HttpRequest) -> HttpResponse:
    if not request.htmx:
        return redirect("/routes")
    return render(request, PAGE + "#config", _config_context())


def routes_page(request: HttpRequest) -> HttpResponse:
    exchange = request.GET.get("exchange", "")
    initial = {"exchange": int(exchange)} if ID.fullmatch(exchange) else {}
    notes = [] if initial or not exchange else [f"exchange: {exchange[:60]!r} is not an exchange id; ignored"]
    context = {**_config_context(), "explain_form": ExplainForm(initial=initial), "param_notes": notes}
    return render(request, PAGE, context)


def _renumber(first_among_equals: int | None = None) -> None:
    """Dense positions 0..n-1; a rule saved at an occupied position goes before the one there."""
    rules = sorted(
        Rule.objects.only("id", "position"), key=lambda r: (r.position, r.pk != first_among_equals, r.pk)
    )
    for position, rule in enumerate(rules):
        if rule.position != position:
            Rule.objects.filter(pk=rule.pk).update(position=position)


def _save(form: RuleForm | ProviderForm, request: HttpRequest) -> bool:
    """Save inside a validated configuration edit; on failure the problems land on the form."""
    if not form.is_valid():
        return False
    creating = form.instance.pk is None
    try:
        with routing.config_edit(actor=access.actor(request)):
            saved = form.save()
            if isinstance(saved, Rule):
                _renumber(saved.pk)
    except routing.ConfigError as exc:
        for problem in exc.problems:
            form.add_error(None, problem)
        if creating:
            form.instance.pk = None  # the row was rolled back
        return False
    return True


def _form_response(
    request: HttpRequest, form: Any, *, kind: str, action: str, status: int = 200
) -> HttpResponse:
    key = form.instance.pk or "new"
    partial = PAGE + f"#{kind}-form"
    context = {"form": form, "action": action, "key": key, "kind": kind, "partial": partial}
    # htmx swaps the bare form into the routes page; a link opened on its own gets a whole page.
    response = render(request, partial if request.htmx else FORM_PAGE, context, status=status)
    # A form with errors replaces itself, not the whole configuration.
    return (
        retarget(response, f"#{kind}-form-{key}") if request.htmx and request.method == "POST" else response
    )


@access.admin_only
def rule_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=pk) if pk else None
    action = f"/routes/rules/{pk}" if pk else "/routes/rules/new"
    if request.method != "POST":
        last = Rule.objects.order_by("-position").values_list("position", flat=True).first()
        initial = {} if rule else {"position": (last or 0) + 1}
        return _form_response(request, RuleForm(instance=rule, initial=initial), kind="rule", action=action)
    form = RuleForm(request.POST, instance=rule)
    if _save(form, request):
        return _config_response(request)
    return _form_response(request, form, kind="rule", action=action)


@access.admin_only
def provider_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk) if pk else None
    action = f"/routes/providers/{pk}" if pk else "/routes/providers/new"
    dialects = routing.known_dialects()
    if request.method != "POST":
        form = ProviderForm(instance=provider, dialects=dialects)
        return _form_response(request, form, kind="provider", action=action)
    form = ProviderForm(request.POST, instance=provider, dialects=dialects)
    if _save(form, request):
        return _config_response(request)
    return _form_response(request, form, kind="provider", action=action)


@require_POST
@access.admin_only
def rule_move(request: HttpRequest, pk: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        return HttpResponseBadRequest("direction: up or down")
    with routing.config_edit(actor=access.actor(request)):
        rules = list(Rule.objects.select_for_update().order_by("position", "id"))
        index = next((i for i, r in enumerate(rules) if r.pk == pk), None)
        if index is None:
            raise Http404("no such rule")
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(rules):
            rules[index], rules[other] = rules[other], rules[index]
        for position, rule in enumerate(rules):
            rule.position = position
            Rule.objects.filter(pk=rule.pk).update(position=position)
    return _config_response(request)


@require_POST
@access.admin_only
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        with routing.config_edit(actor=access.actor(request)):
            Rule.objects.filter(pk=pk).delete()
    except routing.ConfigError as exc:
        return _error(request, exc.problems)
    return _config_response(request)


@require_POST
@access.admin_only
def provider_delete(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        with routing.config_edit(actor=access.actor(request)):
            Provider.objects.filter(pk=pk).delete()
    except ProtectedError:
        return _error(request, ["rules still use this provider: point them elsewhere first"])
    except routing.ConfigError as exc:
        return _error(request, exc.problems)
    return _config_response(request)


def _error(request: HttpRequest, problems: list[str]) -> HttpResponse:
    response = render(request, PAGE + "#config", {**_config_context(), "problems": problems})
    return response if request.htmx else HttpResponse(response.content, status=400)


@require_POST
def rule_dry_run(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=pk) if pk else None
    form = RuleForm(request.POST, instance=rule)
    context: dict[str, Any] = {"key": pk or "new"}
    if not form.is_valid():
        context["problems"] = [f"{k}: {' '.join(v)}" for k, v in form.errors.items()]
        return render(request, PAGE + "#dry-run", context)
    spec = routing.rule_spec(form.save(commit=False))  # the edited rule, unsaved
    _, rules = routing.load_specs()
    candidate = dryrun.with_rule(rules, spec, replaces=rule.name if rule else None,
                                 position=form.cleaned_data.get("position"))  # fmt: skip
    try:
        context["result"] = dryrun.dry_run(candidate)
    except routing.ConfigError as exc:
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


async def explain(request: HttpRequest) -> HttpResponse:
    form = ExplainForm(request.POST or None)
    context: dict[str, Any] = {}
    if request.method == "POST" and not await sync_to_async(form.is_valid)():
        context["problem"] = " ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    elif request.method == "POST":
        body, headers, problem = await sync_to_async(_explain_body)(form)
        if body is not None:
            try:
                decision = await routing.decide(body, headers)  # type: ignore[arg-type]
                context["decision"] = decision
                context["model"] = body["model"]
            except Exception as exc:  # TranslationError: no rule serves it; shown, not raised
                problem = str(getattr(exc, "message", exc))
        context["problem"] = problem
    return await sync_to_async(render)(request, PAGE + "#explain-result", context)


@require_POST
async def rule_test(request: HttpRequest, pk: int) -> HttpResponse:
    from dashboard import replay  # the proxy's serving path, imported only when a test is asked for

    name = await Rule.objects.filter(pk=pk).values_list("name", flat=True).afirst()
    check = await replay.test_rule_target(name or "")
    return await sync_to_async(render)(request, PAGE + "#target-check", {"check": check})
