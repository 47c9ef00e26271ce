// Immunity dashboard live updates: listen to /api/events (Server-Sent Events) and refetch
// the server-rendered fragments an event concerns. Fragments carry data-src (their URL),
// data-match ("*", "app:NAME" or "run:ID") and data-kinds ("all" to follow log lines too).
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) return;
  var badge = document.getElementById("live");
  var timers = {};
  function setBadge(cls, text) { if (badge) { badge.className = "live " + cls; badge.textContent = text; } }
  function refresh(id) {
    if (timers[id]) return;
    timers[id] = setTimeout(function () {
      delete timers[id];
      var el = document.getElementById(id);
      if (!el) return;
      fetch(el.getAttribute("data-src"), { headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var cur = document.getElementById(id);
          if (html === null || !cur) return;
          var t = document.createElement("template");
          t.innerHTML = html.trim();
          var next = t.content.firstElementChild;
          if (!next || next.id !== id) return;
          var open = {};
          cur.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
          cur.replaceWith(next);
          next.querySelectorAll("details[id]").forEach(function (d) { if (d.id in open) d.open = open[d.id]; });
          next.classList.add("flash");
          document.documentElement.setAttribute("data-refreshed", String(Date.now()));
        })
        .catch(function () {});
    }, 200);
  }
  function matches(el, ev) {
    var m = el.getAttribute("data-match"), kinds = el.getAttribute("data-kinds");
    if (ev && ev.kind === "log" && kinds !== "all") return false;
    return !ev || m === "*" || m === "app:" + ev.app || m === "run:" + ev.run;
  }
  function refreshFor(ev) {
    document.querySelectorAll("[data-src][id]").forEach(function (el) { if (matches(el, ev)) refresh(el.id); });
  }
  var missed = false;
  var es = new EventSource("/api/events");
  es.onopen = function () { setBadge("on", "live"); if (missed) refreshFor(null); missed = false; };
  es.onerror = function () { setBadge("down", "reconnecting"); missed = true; };
  es.onmessage = function (e) {
    var ev;
    try { ev = JSON.parse(e.data); } catch (err) { return; }
    document.documentElement.setAttribute("data-last-event", String(ev.seq));
    refreshFor(ev);
  };
})();
