/* Branchwork studio: turn the server's change signals into throttled htmx refetches.
 *
 * This script holds the page's one EventSource (GET /studio/events; no htmx extension).
 * Each "change" event names topics ("tasks", "task:12", "root:7", "run:3", "*" for
 * everything). Every element with a data-live attribute listing one of those topics gets an
 * htmx "live" event, at most once per second per element, with a trailing call so the final
 * state is always fetched. Other scripts can listen to the same signals: every change is
 * also dispatched on document as a "bw:change" CustomEvent (detail: {topics: [...]}).
 * A refetch never lands on someone working in its region (typing, a typed value not sent,
 * an action on its way): it waits, and an answer that comes too late is dropped.
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

  var TYPED = /^(text|search|number|email|url|tel|password)$/;

  function typing(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && a.type !== "checkbox";
  }

  /* A field whose value is no longer the one the server rendered: typed but not sent yet. */
  function edited(el) {
    return Array.prototype.some.call(el.querySelectorAll("input, textarea"), function (f) {
      return (f.tagName === "TEXTAREA" || TYPED.test(f.type)) && f.value !== f.defaultValue;
    });
  }

  /* Someone works in this region: typing, a typed value not sent yet, or an action of theirs
   * whose answer is still on its way (htmx marks the requesting element). A refetch would
   * throw that away, so it waits until they are done. */
  function busy(el) {
    return typing(el) || edited(el) || el.querySelector("." + htmx.config.requestClass) !== null;
  }

  function fire(id) {
    var el = document.getElementById(id);
    if (!el) { return; }
    /* Its own refetch still on its way: htmx would drop this one (hx-sync's default), and
     * with it the change that prompted it; ask again once that answer is in. */
    var inFlight = el.classList.contains(htmx.config.requestClass);
    if (busy(el) || inFlight) { setTimeout(function () { schedule(id); }, THROTTLE_MS); return; }
    htmx.trigger(el, "live");
  }

  /* A refetch is a request sent by a data-live region itself; an action is one sent from
   * inside it (a form's button). A refetch already on its way when someone starts working in
   * the region must not land on top of them: its answer, older than what they typed or than
   * their action's answer, is dropped, and the region is refetched once they are done. */
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail.elt;
    if (!elt || !elt.closest) { return; }
    if (elt.hasAttribute("data-live")) {
      e.detail.requestConfig.bwActions = elt.bwActions || 0;
      return;
    }
    var region = elt.closest("[data-live]");
    if (region) { region.bwActions = (region.bwActions || 0) + 1; }
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    var config = e.detail.requestConfig;
    if (!config || config.bwActions === undefined || !target || !target.id) { return; }
    if (busy(target) || (target.bwActions || 0) !== config.bwActions) {
      e.detail.shouldSwap = false;
      setTimeout(function () { schedule(target.id); }, THROTTLE_MS);
    }
  });

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
