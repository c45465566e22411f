/* Branchwork studio: turn the server's change signals into throttled htmx refetches.
 *
 * This script holds the page's one EventSource (GET /studio/events; no htmx extension).
 * Each "change" event names topics ("tasks", "task:12", "root:7", "run:3", "*" for
 * everything). Every element with a data-live attribute listing one of those topics gets an
 * htmx "live" event, at most once per second per element, with a trailing call so the final
 * state is always fetched. Other scripts can listen to the same signals: every change is
 * also dispatched on document as a "bw:change" CustomEvent (detail: {topics: [...]}).
 *
 * Also here: the Tasks list's row selection (bulk actions) and confirmations that state
 * what a button will do (data-confirm on a form).
 */
(function () {
  "use strict";
  var THROTTLE_MS = 1000;
  var RETRY_MS = 2000;
  var state = {};
  var everOpen = false;

  function typing(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && a.type !== "checkbox";
  }

  function fire(id) {
    var el = document.getElementById(id);
    if (!el) { return; }
    /* Someone is typing in this region (a queue's limit): refetch once they are done. */
    if (typing(el)) { setTimeout(function () { schedule(id); }, THROTTLE_MS); return; }
    htmx.trigger(el, "live");
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
    document.dispatchEvent(new CustomEvent("bw:change", { detail: { topics: topics || ["*"] } }));
  }

  function setLive(on) {
    var badge = document.getElementById("live-state");
    document.body.setAttribute("data-live-state", on ? "open" : "closed");
    if (badge) { badge.textContent = on ? "live" : "reconnecting"; badge.className = "live-state " + (on ? "on" : "off"); }
  }

  function connect() {
    var url = document.body.getAttribute("data-events");
    if (!url || typeof EventSource === "undefined") { return; }
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      setLive(true);
      if (everOpen) { refresh(null); }  /* reconnected: signals may have been lost */
      everOpen = true;
    });
    source.addEventListener("ready", function (e) {
      var version;
      try { version = JSON.parse(e.data || "{}").version; } catch (err) { return; }
      if (String(version) !== document.body.getAttribute("data-version")) { refresh(null); }
    });
    source.addEventListener("change", function (e) {
      var topics;
      try { topics = JSON.parse(e.data).topics || []; } catch (err) { return; }
      refresh(topics);
    });
    source.addEventListener("error", function () {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {  /* the browser gave up: try again */
        setTimeout(connect, RETRY_MS);
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  /* --- selection on lists (bulk actions) ------------------------------------------------ */
  var ticked = {};  /* id -> true; kept across live refetches of the list */

  function selectionChanged() {
    var boxes = document.querySelectorAll("input[data-select-row]");
    var visible = {};
    boxes.forEach(function (b) { visible[b.value] = true; b.checked = !!ticked[b.value]; });
    Object.keys(ticked).forEach(function (k) { if (!visible[k]) { delete ticked[k]; } });
    var ids = Object.keys(ticked);
    var bar = document.getElementById("bulk-bar");
    if (bar) {
      bar.querySelectorAll("[data-selected-count]").forEach(function (el) { el.textContent = String(ids.length); });
      bar.querySelectorAll("input[name=ids]").forEach(function (el) { el.value = ids.join(","); });
      bar.querySelectorAll("button[data-bulk]").forEach(function (b) { b.disabled = ids.length === 0; });
    }
    var all = document.querySelector("input[data-select-all]");
    if (all) { all.checked = ids.length > 0 && ids.length === boxes.length; }
  }

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (!t.matches) { return; }
    if (t.matches("input[data-select-all]")) {
      document.querySelectorAll("input[data-select-row]").forEach(function (b) {
        if (t.checked) { ticked[b.value] = true; } else { delete ticked[b.value]; }
      });
      selectionChanged();
    } else if (t.matches("input[data-select-row]")) {
      if (t.checked) { ticked[t.value] = true; } else { delete ticked[t.value]; }
      selectionChanged();
    }
  });
  document.addEventListener("htmx:afterSettle", selectionChanged);
  /* A bulk action done: what was ticked is no longer a selection. */
  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt;
    if (e.detail.successful && elt && elt.closest && elt.closest("#bulk-bar")) { ticked = {}; selectionChanged(); }
  });

  /* A form with data-confirm asks first; "{n}" is replaced by the selected count. */
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var text = f.getAttribute && f.getAttribute("data-confirm");
    if (!text) { return; }
    var counter = document.querySelector("#bulk-bar [data-selected-count]");
    var n = counter ? counter.textContent : "";
    if (!window.confirm(text.replace("{n}", n))) { e.preventDefault(); e.stopImmediatePropagation(); }
  }, true);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
