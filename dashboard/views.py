"""Dashboard pages. Views are glue: parse the request, call a query/service function, render."""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import sync_to_async
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django_htmx.http import push_url

from dashboard import charts, conversation, costs, queries, sessions, toolcalls
from dashboard.htmx import HtmxHttpRequest
from proxy.models import Exchange, Rule

ID = re.compile(r"[0-9]{1,18}")  # an id that fits the database's 64-bit integer


def _id_param(request: HtmxHttpRequest, name: str, notes: list[str]) -> int | None:
    """An id from the query string; anything else is ignored, with a note for the page."""
    value = queries.param(request.GET, name)
    if not value:
        return None
    if ID.fullmatch(value):
        return int(value)
    notes.append(f"{name}: {value[:60]!r} is not an id; ignored")
    return None


def feed(request: HtmxHttpRequest) -> HttpResponse:
    filters = queries.parse_filters(request.GET)
    notes = queries.filter_notes(request.GET, filters)
    before = _id_param(request, "before", notes)
    rows, next_before = queries.feed_page(filters, before=before)
    context: dict[str, Any] = {
        "param_notes": notes,
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


def exchange_raw(request: HtmxHttpRequest, pk: int, side: str) -> HttpResponse:
    """One side of an exchange as recorded: shown in the browser, or saved with ?download=1."""
    field = conversation.SIDE_FIELDS.get(side)
    if field is None:
        raise Http404("no such side: client-request, upstream-request, upstream-response or client-response")
    exchange = Exchange.objects.filter(pk=pk).only("id", field).first()
    if exchange is None:
        raise Http404("no such exchange")
    raw = conversation.raw_side(exchange, side)
    if raw is None:
        raise Http404("nothing recorded on this side of the exchange")
    body, content_type = raw
    response = HttpResponse(body, content_type=content_type)
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{conversation.raw_filename(exchange, side)}"'
    response["X-Content-Type-Options"] = "nosniff"  # recorded text is never sniffed into HTML
    return response


def exchange_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    try:
        exchange = Exchange.objects.get(pk=pk)
    except Exchange.DoesNotExist as exc:
        raise Http404("no such exchange") from exc
    context = conversation.detail_context(exchange, host=request.get_host(), scheme=request.scheme or "http")
    context["price_link"] = costs.price_link(exchange)
    context["rules"] = list(
        # in the order tried: the default last, as the routes page lists them
        Rule.objects.filter(enabled=True)
        .order_by("is_default", "position", "id")
        .values_list("name", flat=True)
    )
    return render(request, "dashboard/exchange_detail.html", context)


def session_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "dashboard/sessions.html", {"sessions": sessions.recent_sessions()})


def session_detail(request: HtmxHttpRequest, session_id: str) -> HttpResponse:
    if "\x00" in session_id or len(session_id) > 100:  # no such column value: refused before the query
        raise Http404("no such session")
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


def tool_matrix(request: HtmxHttpRequest) -> HttpResponse:
    report = toolcalls.recent_report()
    return render(
        request,
        "dashboard/tools.html",
        {
            "matrix": report.matrix(),
            "healing": report.healing_rows(),
            "analysed": report.analysed,
            "window": toolcalls.WINDOW,
        },
    )


def tool_failures(request: HtmxHttpRequest) -> HttpResponse:
    agent, model, tool = (queries.param(request.GET, k) for k in ("agent", "model", "tool"))
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


def cost_report(request: HtmxHttpRequest) -> HttpResponse:
    range_key = queries.param(request.GET, "range") or "30d"
    notes = []
    if range_key not in costs.RANGES:
        notes.append(f"range: {range_key[:60]!r} is not one of {', '.join(costs.RANGES)}; showing 30d")
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
        "param_notes": notes,
        "ranges": list(costs.RANGES),
        "cost_chart": cost_chart,
        "token_chart": token_chart,
        "latency_sample": f"{costs.LATENCY_SAMPLE:,}",
    }
    return render(request, "dashboard/costs.html", context)


async def exchange_replay(request: HtmxHttpRequest, pk: int) -> HttpResponse:
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
        "original_blocks": conversation.to_blocks(response.get("content"), conversation.Budget()),
        "replay_blocks": conversation.to_blocks((result.message or {}).get("content"), conversation.Budget()),
    }
    return await sync_to_async(render)(request, "dashboard/exchange_detail.html#replay-result", context)
