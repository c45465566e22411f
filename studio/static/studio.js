/* Branchwork studio: turn SSE change signals into throttled htmx refetches of partials.
 *
 * The htmx SSE extension (served from the installed django-js-lib-htmx package) owns the
 * EventSource connection. Each "change" event names topics ("tasks", "task:12", "root:7",
 * "run:3", "*" for everything). Every element with a data-live attribute listing one of
 * those topics gets an htmx "live" event, at most once per second per element, with a
 * trailing call so the final state is always fetched.
 */
(function () {
  "use strict";
  var THROTTLE_MS = 1000;
  var state = {};
  var sources = new WeakSet();

  function fire(id) {
    var el = document.getElementById(id);
    if (el) { htmx.trigger(el, "live"); }
  }

  function schedule(id) {
    var s = state[id] || (state[id] = { last: 0, timer: null });
    if (s.timer) { return; }
    var wait = s.last + THROTTLE_MS - Date.now();
    if (wait <= 0) { s.last = Date.now(); fire(id); return; }
    s.timer = setTimeout(function () { s.timer = null; s.last = Date.now(); fire(id); }, wait);
  }

  function refresh(topics) {
    var all = topics === null || topics.indexOf("*") >= 0;
    document.querySelectorAll("[data-live]").forEach(function (el) {
      if (!el.id) { return; }
      var keys = el.getAttribute("data-live").split(/\s+/);
      if (all || keys.some(function (k) { return topics.indexOf(k) >= 0; })) { schedule(el.id); }
    });
  }

  function setLive(on) {
    var badge = document.getElementById("live-state");
    document.body.setAttribute("data-live-state", on ? "open" : "closed");
    if (badge) { badge.textContent = on ? "live" : "reconnecting"; badge.className = "live-state " + (on ? "on" : "off"); }
  }

  document.addEventListener("htmx:sseOpen", function (evt) {
    var source = evt.detail.source;
    setLive(true);
    if (sources.has(source)) { refresh(null); return; }  /* reconnected: signals may be lost */
    sources.add(source);
    source.addEventListener("ready", function (e) {
      var version = JSON.parse(e.data || "{}").version;
      if (String(version) !== document.body.getAttribute("data-version")) { refresh(null); }
    });
    source.addEventListener("change", function (e) {
      var topics;
      try { topics = JSON.parse(e.data).topics || []; } catch (err) { return; }
      refresh(topics);
    });
    source.addEventListener("error", function () { setLive(false); });
  });
})();
