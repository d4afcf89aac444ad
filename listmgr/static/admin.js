/* listmgr admin: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  /* JSON over fetch with the session cookie and the CSRF token (the API accepts both). */
  /* signal (optional): an AbortSignal that cancels the request (the promise then rejects with
     an AbortError). */
  function api(method, url, body, signal) {
    var opts = { method: method, credentials: "same-origin",
                 headers: { "Accept": "application/json", "X-CSRFToken": CSRF } };
    if (signal) { opts.signal = signal; }
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var err = new Error((data.error && data.error.message) || resp.statusText);
          err.data = data; err.status = resp.status;
          throw err;
        }
        return data;
      });
    });
  }
  window.listmgr = { api: api, csrf: CSRF };

  function debounce(fn, ms) {
    var t = null;
    function later() {
      var args = arguments, self = this;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(self, args); }, ms);
    }
    later.cancel = function () { clearTimeout(t); };
    return later;
  }
  window.listmgr.debounce = debounce;

  /* Whether a field was changed before a page's script ran (a slow connection, a quick hand):
     then the page was shown with other values, and the person's choice must stand. */
  function changedSinceLoad(el) {
    if (el.type === "checkbox" || el.type === "radio") { return el.checked !== el.defaultChecked; }
    if (el.tagName === "SELECT") {  /* with no option marked, a single choice starts on the first */
      var marked = Array.prototype.some.call(el.options, function (o) { return o.defaultSelected; });
      return Array.prototype.some.call(el.options, function (o, i) {
        return o.selected !== (marked ? o.defaultSelected : !el.multiple && i === 0);
      });
    }
    return el.type !== "hidden" && "defaultValue" in el && el.value !== el.defaultValue;
  }
  window.listmgr.changedSinceLoad = changedSinceLoad;

  /* Forms that ask before doing something that cannot be undone. */
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var button = ev.submitter;
    var question = (button && button.getAttribute("data-confirm")) ||
      (form.getAttribute && form.getAttribute("data-confirm"));
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  }, true);

  /* Copy buttons and select-on-focus for code boxes. */
  $all("[data-copy]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var target = $(btn.getAttribute("data-copy"));
      if (!target) { return; }
      target.select();
      var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard) { navigator.clipboard.writeText(target.value).then(done, function () { document.execCommand("copy"); done(); }); }
      else { document.execCommand("copy"); done(); }
    });
  });
  $all("[data-select-all]").forEach(function (el) {
    el.addEventListener("focus", function () { el.select(); });
  });

  /* A box that ticks (or clears) every checkbox of that name in its form. */
  $all("[data-check-all]").forEach(function (box) {
    var name = box.getAttribute("data-check-all");
    box.hidden = false;  /* it needs this script to work */
    var items = function () {
      return $all('input[type="checkbox"][name="' + name + '"]').filter(function (x) { return x.form === box.form; });
    };
    box.addEventListener("change", function () { items().forEach(function (x) { x.checked = box.checked; }); });
    items().forEach(function (x) {
      x.addEventListener("change", function () {
        var all = items();
        box.checked = all.every(function (y) { return y.checked; });
        box.indeterminate = !box.checked && all.some(function (y) { return y.checked; });
      });
    });
  });

  /* Live progress: poll a JSON URL and fill [data-field] elements until it says it is done. */
  $all("[data-poll]").forEach(function (box) {
    var url = box.getAttribute("data-poll");
    var every = parseInt(box.getAttribute("data-poll-ms") || "1000", 10);
    function fill(data) {
      $all("[data-field]", box).forEach(function (el) {
        var key = el.getAttribute("data-field");
        if (!(key in data)) { return; }
        var value = data[key];
        if (el.tagName === "PROGRESS") {
          el.max = data[el.getAttribute("data-max") || "total"] || 1;
          el.value = value || 0;
        } else if (el.classList.contains("badge")) {
          el.textContent = value;
          el.className = "badge " + value;
        } else {
          el.textContent = typeof value === "number" ? value.toLocaleString() : (value == null ? "" : value);
        }
      });
    }
    function tick() {
      api("GET", url).then(function (data) {
        fill(data);
        if (data.done) {
          box.setAttribute("data-done", "1");
          var reload = box.getAttribute("data-reload-when-done");
          if (reload) { window.location.reload(); }
          return;
        }
        setTimeout(tick, every);
      }).catch(function () { setTimeout(tick, every * 3); });
    }
    tick();
  });

  /* Auto-submit filters. */
  $all("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
})();
