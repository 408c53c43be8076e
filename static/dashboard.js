// Switchboard dashboard behaviour: keyboard navigation of the feed, copy buttons, live-socket status.
// A static file because the Content-Security-Policy allows no inline script.
"use strict";

(function () {
  function rows() { return Array.from(document.querySelectorAll("#exchange-rows tr.exchange")); }

  function select(row) {
    document.querySelectorAll("#exchange-rows tr.selected").forEach(function (r) { r.classList.remove("selected"); });
    if (row) {
      row.classList.add("selected");
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (typing(ev.target)) {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    var list = rows();
    var current = document.querySelector("#exchange-rows tr.selected");
    var i = current ? list.indexOf(current) : -1;
    if (ev.key === "j" || ev.key === "ArrowDown") {
      if (!list.length) return;
      select(list[Math.min(i + 1, list.length - 1)]);
      ev.preventDefault();
    } else if (ev.key === "k" || ev.key === "ArrowUp") {
      if (!list.length) return;
      select(list[Math.max(i - 1, 0)]);
      ev.preventDefault();
    } else if (ev.key === "Enter" && current) {
      window.location.href = current.getAttribute("data-href");
    } else if (ev.key === "/") {
      var q = document.getElementById("q");
      if (q) { q.focus(); ev.preventDefault(); }
    }
  });

  document.addEventListener("click", function (ev) {
    var row = ev.target.closest && ev.target.closest("#exchange-rows tr.exchange");
    if (row && !ev.target.closest("a")) select(row);
    var copy = ev.target.closest && ev.target.closest("[data-copy-from]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy-from"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent).then(function () {
          copy.textContent = "Copied";
          setTimeout(function () { copy.textContent = copy.getAttribute("data-label") || "Copy"; }, 1500);
        });
      }
    }
  });

  // Reconnect quickly once the server is back: the ws extension's default backs off exponentially (up
  // to 64 s, ~14 s typical after a restart). A retry every ~0.5 s costs a refused connection each.
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retryCount) { return Math.min(250 + retryCount * 100, 600); };
  }
  var ABNORMAL = [1006, 1011, 1012, 1013];  // the extension retries these by itself

  // Socket status for the "live" dot; new rows flash briefly.
  document.addEventListener("htmx:wsOpen", function (ev) {
    var live = document.getElementById("live");
    if (!live) return;
    live.classList.add("connected");
    if (live.getAttribute("data-was-closed")) {
      // Back after a gap: the rows that changed meanwhile were never pushed. Fetch this page's rows
      // again and merge them in, with the socket kept open: a row it pushes before the reply arrives
      // is newer than the reply's copy, so the reply only adds rows and finishes pending ones.
      live.removeAttribute("data-was-closed");
      fetch(window.location.pathname + window.location.search, { headers: { "HX-Request": "true" } })
        .then(function (response) { return response.ok ? response.text() : ""; })
        .then(function (html) {
          var template = document.createElement("template");
          template.innerHTML = html;  // server-rendered, escaped: the same HTML the page itself renders
          template.content.querySelectorAll("#exchange-rows tr.exchange").forEach(function (row) {
            var shown = document.getElementById(row.id);
            if (!shown) placeRow(row);
            else if (shown.classList.contains("status-pending") && !row.classList.contains("status-pending")) {
              shown.replaceWith(row);
              htmx.process(row);
            }
          });
        });
    }
  });
  document.addEventListener("htmx:wsClose", function (ev) {
    var live = document.getElementById("live");
    if (!live || ev.target !== live) return;
    live.classList.remove("connected");
    live.setAttribute("data-was-closed", "1");
    var code = ev.detail && ev.detail.event && ev.detail.event.code;
    var socket = ev.detail && ev.detail.socketWrapper;
    // A server shutting down closes with 1001 "going away", which the extension does not retry.
    if (ABNORMAL.indexOf(code) < 0 && socket && socket.reconnect && document.body.contains(live)) {
      setTimeout(function () { if (document.body.contains(live)) socket.reconnect(); }, 500);
    }
  });
  // An update for a row this page does not show yet (a filtered page: the row started as "pending"
  // and only now matches) has no target for its OOB swap: insert it in id order instead.
  document.addEventListener("htmx:wsBeforeMessage", function (ev) {
    var message = ev.detail && ev.detail.message;
    // Progress of a stream this page does not show (filtered out, or an older page): nothing to update.
    var progress = typeof message === "string" && /^\s*<span id="(progress-\d+)"/.exec(message);
    if (progress && !document.getElementById(progress[1])) { ev.preventDefault(); return; }
    var match = typeof message === "string" && /^\s*<tr id="exchange-(\d+)"/.exec(message);
    if (!match || document.getElementById("exchange-" + match[1])) return;
    ev.preventDefault();
    var template = document.createElement("template");
    template.innerHTML = message;  // server-rendered, escaped: the same HTML an OOB swap would insert
    var row = template.content.querySelector("tr.exchange");
    if (row) placeRow(row);
  });

  // A row this page does not show yet goes where its id puts it (newest first).
  function placeRow(row) {
    var tbody = document.getElementById("exchange-rows");
    if (!tbody) return;
    row.removeAttribute("hx-swap-oob");
    var id = parseInt(row.id.replace("exchange-", ""), 10);
    var next = Array.from(tbody.querySelectorAll("tr.exchange")).find(function (r) {
      return parseInt(r.id.replace("exchange-", ""), 10) < id;
    });
    tbody.insertBefore(row, next || document.getElementById("load-more"));
    row.classList.add("flash");
    htmx.process(row);
  }

  document.addEventListener("htmx:oobAfterSwap", function (ev) {
    var target = ev.detail && ev.detail.target;
    if (target && target.id === "exchange-rows" && target.firstElementChild) {
      target.firstElementChild.classList.add("flash");
    } else if (target && target.classList && target.classList.contains("exchange")) {
      target.classList.add("flash");
    }
  });
})();
