"""Dashboard pages. Views are glue: parse the request, call a query/service function, render."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import push_url

from dashboard import charts, conversation, costs, queries, sessions, toolcalls
from proxy.models import Exchange, Rule


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def feed(request: HttpRequest) -> HttpResponse:
    filters = queries.parse_filters(request.GET)
    before = _int_or_none(request.GET.get("before"))
    rows, next_before = queries.feed_page(filters, before=before)
    context = {
        "rows": rows,
        "next_before": next_before,
        "filters": filters,
        "filter_query": filters.as_query(),
        "paged": before is not None,
        "statuses": Exchange.Status.values,
        "ranges": list(queries.RANGES),
    }
    if request.htmx and before is not None:
        return render(request, "dashboard/exchanges.html#more-rows", context)
    if request.htmx:
        response = render(request, "dashboard/exchanges.html#results", context)
        # The address bar gets the filters that are set, not every empty field of the form.
        return push_url(response, "/?" + context["filter_query"] if context["filter_query"] else "/")
    context["choices"] = queries.filter_choices()
    return render(request, "dashboard/exchanges.html", context)


def exchange_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        exchange = Exchange.objects.get(pk=pk)
    except Exchange.DoesNotExist as exc:
        raise Http404("no such exchange") from exc
    context = conversation.detail_context(exchange, host=request.get_host(), scheme=request.scheme)
    context["price_link"] = costs.price_link(exchange)
    context["rules"] = list(
        Rule.objects.filter(enabled=True).order_by("position", "id").values_list("name", flat=True)
    )
    return render(request, "dashboard/exchange_detail.html", context)


def session_list(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/sessions.html", {"sessions": sessions.recent_sessions()})


def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    roots, exchanges = sessions.build_tree(session_id)
    if not exchanges:
        raise Http404("no such session")
    context = {
        "session_id": session_id,
        "roots": roots,
        "totals": sessions.session_totals(roots),
        "truncated": len(exchanges) >= sessions.MAX_EXCHANGES,
    }
    return render(request, "dashboard/session.html", context)


def tool_matrix(request: HttpRequest) -> HttpResponse:
    report = toolcalls.recent_report()
    return render(
        request,
        "dashboard/tools.html",
        {"matrix": report.matrix(), "analysed": report.analysed, "window": toolcalls.WINDOW},
    )


def tool_failures(request: HttpRequest) -> HttpResponse:
    agent, model, tool = (request.GET.get(k, "") for k in ("agent", "model", "tool"))
    report = toolcalls.recent_report()
    context = {
        "agent": agent,
        "model": model,
        "tool": tool,
        "cell": report.cells.get((agent, model, tool)),
        "groups": report.groups(agent, model, tool),
        "tool_error_groups": report.groups(agent, model, tool, by_tool=True),
    }
    return render(request, "dashboard/tool_failures.html", context)


def _usd(v: float) -> str:
    return f"${v:,.2f}" if v >= 1 else f"${v:.3f}"


def _tok(v: float) -> str:
    return f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e3 else f"{v:.0f}"


def cost_report(request: HttpRequest) -> HttpResponse:
    range_key = request.GET.get("range", "30d")
    if range_key not in costs.RANGES:
        range_key = "30d"
    data = costs.report(range_key)
    labels = [d["day"].strftime("%m-%d") for d in data["days"]]
    cost_chart = charts.bar_chart(
        labels,
        [
            ("routed cost (priced traffic)", [d["cost"] or 0 for d in data["days"]]),
            ("same tokens on the requested model", [d["claude_cost"] for d in data["days"]]),
        ],
        fmt=_usd,
        title="Cost per day (estimate)",
    )
    token_chart = charts.bar_chart(
        labels,
        [
            ("input", [d["input"] for d in data["days"]]),
            ("output", [d["output"] for d in data["days"]]),
            ("cache reads", [d["cache_read"] for d in data["days"]]),
        ],
        stacked=True,
        fmt=_tok,
        title="Tokens per day",
    )
    context = {
        **data,
        "range": range_key,
        "ranges": list(costs.RANGES),
        "cost_chart": cost_chart,
        "token_chart": token_chart,
    }
    return render(request, "dashboard/costs.html", context)


async def exchange_replay(request: HttpRequest, pk: int) -> HttpResponse:
    from dashboard import replay  # imports the proxy's serving path: only when a replay is asked for

    original = await Exchange.objects.filter(pk=pk).afirst()
    if original is None:
        raise Http404("no such exchange")
    if request.method != "POST":
        return HttpResponse(status=405)
    result = await replay.replay(original, request.POST.get("rule", ""))
    response = original.client_response if isinstance(original.client_response, dict) else {}
    context = {
        "e": original,
        "result": result,
        "original_blocks": conversation.to_blocks(response.get("content")),
        "replay_blocks": conversation.to_blocks((result.message or {}).get("content")),
    }
    return await sync_to_async(render)(request, "dashboard/exchange_detail.html#replay-result", context)
