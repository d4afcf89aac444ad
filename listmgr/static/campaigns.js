/* listmgr campaign composer: from the first keystroke, before any save, the preview (as the
   chosen subscriber), its subject and sender, the audience count and the campaign checklist
   follow what the form holds.
   Nothing is stored until Save: one save, one audit entry. Without this file the Save button
   saves and the saved draft is previewed. */
(function () {
  "use strict";
  var form = document.getElementById("compose");
  if (!form || !window.listmgr || !form.getAttribute("data-preview-json")) { return; }
  var frameForm = document.getElementById("preview-post");
  var asInput = document.getElementById("preview-as");
  var errorEl = document.getElementById("compose-error");
  var stateEl = document.getElementById("save-state");
  var countEl = document.getElementById("audience-count");
  var dirty = false;

  /* A/B test panel: the variants' bodies show only for a content test */
  var kindSelect = form.elements.ab_kind;
  if (kindSelect) {
    kindSelect.addEventListener("change", function () {
      Array.prototype.forEach.call(form.querySelectorAll(".ab-body"), function (el) { el.hidden = kindSelect.value !== "content"; });
    });
  }
  function showError(message) { errorEl.textContent = message || ""; errorEl.hidden = !message; }
  function setText(id, value) { var el = document.getElementById(id); if (el) { el.textContent = value; } }

  /* The form as it is now, posted with its CSRF token (the form carries it). */
  function post(url) {
    return fetch(url, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": window.listmgr.csrf }
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) { throw new Error((data.error && data.error.message) || resp.statusText); }
        return data;
      });
    });
  }

  function refreshFrame() {
    new FormData(form).forEach(function (value, name) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = value;
      frameForm.appendChild(input);
    });
    frameForm.submit();  /* the values are taken now: the copies can go */
    while (frameForm.firstChild) { frameForm.removeChild(frameForm.firstChild); }
  }

  /* The campaign checklist: one line per check, its level first (blocker, warning, ok). */
  var checklistEl = document.getElementById("checklist");
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function showChecklist(list) {
    if (!checklistEl || !list) { return; }
    while (checklistEl.firstChild) { checklistEl.removeChild(checklistEl.firstChild); }
    list.checks.forEach(function (c) {
      var li = document.createElement("li");
      var level = document.createElement("span");
      li.className = "check check-" + c.level;
      li.setAttribute("data-code", c.code);
      li.setAttribute("data-level", c.level);
      level.className = "check-level";
      level.textContent = c.level;
      li.appendChild(level);
      li.appendChild(document.createTextNode(" " + c.message));
      checklistEl.appendChild(li);
    });
    setText("checklist-summary", plural(list.blockers, "blocker") + ", " + plural(list.warnings, "warning"));
  }

  var seq = 0;
  function refresh() {
    var mine = ++seq;  /* answers can arrive out of order: only the latest one counts */
    refreshFrame();
    post(form.getAttribute("data-preview-json")).then(function (data) {
      if (mine !== seq) { return; }
      setText("pv-subject", data.subject);
      setText("pv-from", data.from);
      setText("pv-to", data.to);
      countEl.textContent = data.audience.label;
      showChecklist(data.checklist);
      showError("");
    }).catch(function (err) { if (mine === seq) { showError(err.message); } });
  }
  var soon = window.listmgr.debounce(refresh, 400);

  function markDirty() {
    if (!dirty) { dirty = true; stateEl.textContent = "Unsaved changes"; }
  }
  function edited(ev) {
    if (ev.target !== asInput) { markDirty(); }
    soon();
  }
  form.addEventListener("input", edited);
  form.addEventListener("change", edited);
  form.addEventListener("submit", function () { dirty = false; soon.cancel(); });
  window.addEventListener("beforeunload", function (ev) {
    if (dirty) { ev.preventDefault(); ev.returnValue = ""; }
  });
  /* the test form previews as the same person */
  function followAs() {
    Array.prototype.forEach.call(document.querySelectorAll('form input[type="hidden"][name="as"]'), function (h) { h.value = asInput.value; });
  }
  if (asInput) { asInput.addEventListener("change", followAs); }

  /* A field changed before this script ran counts as changed now: the page was shown with
     the saved values, and nothing else would notice. */
  var early = Array.prototype.filter.call(form.elements, window.listmgr.changedSinceLoad);
  if (asInput && early.indexOf(asInput) >= 0) { followAs(); }
  if (early.some(function (el) { return el !== asInput; })) { markDirty(); }
  var frame = document.getElementById("preview-frame");
  /* a new draft shows its starting point; a changed one what it holds now */
  if (early.length || !frame.getAttribute("src")) { refresh(); }
})();
