/* listmgr campaign composer: saves the draft as you type, refreshes the preview (as the chosen
   subscriber) and the audience count. Without it the Save button does the same in one step. */
(function () {
  "use strict";
  var form = document.getElementById("compose");
  if (!form || !window.listmgr || !form.getAttribute("data-api")) { return; }
  var api = window.listmgr.api;
  var frame = document.getElementById("preview-frame");
  var asInput = document.getElementById("preview-as");
  var errorEl = document.getElementById("compose-error");
  var stateEl = document.getElementById("autosave-state");
  var countEl = document.getElementById("audience-count");
  var TEXT = ["name", "subject", "preheader", "from_name", "from_email", "reply_to", "text"];

  function value(name) { var el = form.elements[name]; return el ? el.value : ""; }
  function lists() {
    return Array.prototype.filter.call(form.querySelectorAll('input[name="lists"]'), function (x) { return x.checked; })
      .map(function (x) { return x.value; });
  }
  function segmentId() { var v = value("segment_id"); return v ? parseInt(v, 10) : null; }
  function format() { var r = form.querySelector('input[name="content_format"]:checked'); return r ? r.value : "html"; }
  function body() {
    var out = { lists: lists(), segment_id: segmentId(), body: value("body"), content_format: format() };
    TEXT.forEach(function (k) { out[k] = value(k); });
    out.ab_test = abTest();
    return out;
  }
  /* the A/B test panel as the API's ab_test (null when switched off); empty variants are left out */
  function abTest() {
    var on = form.elements.ab_on;
    if (!on || !on.checked) { return null; }
    var kind = value("ab_kind"), unit = value("ab_wait_unit") === "minutes" ? 1 : 60, alternatives = [];
    [1, 2, 3].forEach(function (i) {
      var subject = value("ab_subject_" + i).trim(), text = value("ab_body_" + i);
      if (subject || (kind === "content" && text.trim())) {
        alternatives.push(kind === "content" ? { subject: subject, body: text } : { subject: subject });
      }
    });
    return { kind: kind, metric: value("ab_metric"), test_percent: Number(value("ab_percent")),
      wait_minutes: Number(value("ab_wait")) * unit, alternatives: alternatives };
  }
  var kindSelect = form.elements.ab_kind;
  if (kindSelect) {
    kindSelect.addEventListener("change", function () {
      Array.prototype.forEach.call(form.querySelectorAll(".ab-body"), function (el) { el.hidden = kindSelect.value !== "content"; });
    });
  }
  function showError(message) { errorEl.textContent = message || ""; errorEl.hidden = !message; }

  var previewSeq = 0;
  function refreshPreview() {
    var mine = ++previewSeq;  /* answers can arrive out of order: only the latest one counts */
    var who = asInput ? asInput.value.trim() : "";
    var query = who ? "?as=" + encodeURIComponent(who) : "";
    frame.src = form.getAttribute("data-preview") + query + (query ? "&" : "?") + "t=" + Date.now();
    var url = form.getAttribute("data-preview-json") + (who ? "?email=" + encodeURIComponent(who) : "");
    api("GET", url).then(function (data) {
      if (mine !== previewSeq) { return; }
      var subject = document.getElementById("pv-subject");
      var to = document.getElementById("pv-to");
      if (subject) { subject.textContent = data.subject; }
      if (to) { to.textContent = data.to; }
      showError("");
    }).catch(function (err) { if (mine === previewSeq) { showError(err.message); } });
  }

  var saving = 0;
  var save = window.listmgr.debounce(function () {
    var mine = ++saving;
    stateEl.textContent = "Saving…";
    api("PATCH", form.getAttribute("data-api"), body()).then(function () {
      if (mine !== saving) { return; }
      stateEl.textContent = "Draft saved";
      showError("");
      refreshPreview();
    }).catch(function (err) {
      if (mine !== saving) { return; }
      stateEl.textContent = "Not saved";
      showError(err.message);
    });
  }, 700);

  var count = window.listmgr.debounce(function () {
    if (!lists().length) { countEl.textContent = "0"; return; }
    api("POST", form.getAttribute("data-audience-url"), { lists: lists(), segment_id: segmentId() })
      .then(function (data) {
        countEl.textContent = data.count === null ? "fewer than " + data.fewer_than
          : data.count.toLocaleString();
      })
      .catch(function (err) { countEl.textContent = "?"; showError(err.message); });
  }, 300);

  form.addEventListener("input", function (ev) {
    if (ev.target === asInput) { return; }
    save();
  });
  form.addEventListener("change", function (ev) {
    if (ev.target === asInput) { refreshPreview(); return; }
    if (ev.target.name === "lists" || ev.target.name === "segment_id") { count(); }
    if (ev.target.type === "radio" || ev.target.type === "checkbox" || ev.target.tagName === "SELECT") { save(); }
  });
  if (asInput) {
    asInput.addEventListener("input", window.listmgr.debounce(refreshPreview, 600));
    /* the test form previews as the same person */
    asInput.addEventListener("change", function () {
      Array.prototype.forEach.call(document.querySelectorAll('form input[type="hidden"][name="as"]'), function (h) { h.value = asInput.value; });
    });
  }
})();
