/* listmgr segment rule builder: rows of field / operator / value in nested all/any/none groups,
   kept in sync with the JSON textarea (which still works alone), and a live count. */
(function () {
  "use strict";
  var root = document.getElementById("rule-builder");
  var textarea = document.getElementById("rules");
  if (!root || !textarea || !window.listmgr) { return; }
  var vocab = JSON.parse(root.getAttribute("data-vocab"));
  var countUrl = root.getAttribute("data-count-url");
  var countEl = document.getElementById("live-count");
  var errorEl = document.getElementById("rules-error");
  var form = document.getElementById("segment-form");
  var readOnly = textarea.hasAttribute("readonly");
  var fieldsByKey = {};
  vocab.fields.forEach(function (f) { fieldsByKey[f.key] = f; });
  var OP_LABELS = { eq: "is", ne: "is not", "in": "is one of", contains: "contains", exists: "has a value",
    gt: ">", gte: "≥", lt: "<", lte: "≤", between: "between", before: "before", after: "after",
    within_last_days: "within the last N days" };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "class") { node.className = attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function select(options, value, label) {
    var s = el("select", { "aria-label": label || "" });
    options.forEach(function (o) {
      var opt = el("option", { value: o[0], text: o[1] });
      if (String(o[0]) === String(value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    return s;
  }
  function input(value, attrs) {
    var i = el("input", Object.assign({ type: "text" }, attrs || {}));
    i.value = value == null ? "" : (Array.isArray(value) ? value.join(", ") : value);
    return i;
  }
  function csv(text) { return text.split(",").map(function (x) { return x.trim(); }).filter(Boolean); }
  function typed(type, raw) {
    if (type === "number") { var n = Number(raw); return raw === "" || isNaN(n) ? raw : n; }
    if (type === "boolean") { return raw === "true"; }
    return raw;
  }

  /* -- model <-> rules ------------------------------------------------------------------- */
  function toModel(rule) {
    if (rule && typeof rule === "object" && !Array.isArray(rule)) {
      if (Array.isArray(rule.all)) { return { group: "all", items: rule.all.map(toModel) }; }
      if (Array.isArray(rule.any)) { return { group: "any", items: rule.any.map(toModel) }; }
      if (rule.not && Array.isArray(rule.not.any)) { return { group: "none", items: rule.not.any.map(toModel) }; }
      if (rule.not) { return { group: "none", items: [toModel(rule.not)] }; }
      if ("field" in rule || "interests" in rule || "list" in rule || "event" in rule || "engagement" in rule) {
        return { cond: JSON.parse(JSON.stringify(rule)) };
      }
    }
    throw new Error("unsupported");
  }
  function toRules(model) {
    if (model.cond) { return model.cond; }
    var items = model.items.map(toRules);
    if (model.group === "none") { return { not: { any: items } }; }
    var out = {}; out[model.group] = items; return out;
  }

  var model;
  try {
    var initial = JSON.parse(textarea.value || "{}");
    model = (initial && Object.keys(initial).length) ? toModel(initial) : { group: "all", items: [] };
    if (!model.group) { model = { group: "all", items: [model] }; }
  } catch (e) {
    root.appendChild(el("p", { "class": "hint", text: "These rules can only be edited as JSON below." }));
    bindJson();
    return;
  }
  var details = document.getElementById("rules-json");
  if (details) { details.open = false; }

  function defaultCond(kind) {
    if (kind === "field") { return { field: "email", op: "contains", value: "" }; }
    if (kind === "interests") { return { interests: "has_any", value: [] }; }
    if (kind === "list") { return { list: vocab.lists.length ? vocab.lists[0].slug : "", status: "confirmed" }; }
    if (kind === "event") { return { event: "", at_least: 1, within_days: 30 }; }
    return { engagement: "opened", within_days: 90 };
  }
  function kindOf(cond) {
    return ["field", "interests", "list", "event", "engagement"].filter(function (k) { return k in cond; })[0];
  }

  /* A condition still being filled in is left out of the count and of the saved rules (the
     server does the same: listmgr.segments.without_incomplete). */
  function blank(v) {
    return Array.isArray(v) ? v.every(blank) : v == null || (typeof v === "string" && !v.trim());
  }
  function incomplete(c) {
    if (!c || typeof c !== "object" || Array.isArray(c)) { return false; }
    if ("field" in c) { return blank(c.field) || (c.op !== "exists" && blank(c.value)); }
    if ("interests" in c) { return blank(c.value); }
    if ("event" in c) { return blank(c.event); }
    if ("list" in c) { return blank(c.list); }
    return false;
  }
  function withoutIncomplete(node) {
    if (!node || typeof node !== "object" || Array.isArray(node)) { return node; }
    var keys = Object.keys(node);
    if (keys.length === 1 && keys[0] === "not") {
      var inner = withoutIncomplete(node.not);
      return inner === null ? null : { not: inner };
    }
    if (keys.length === 1 && (keys[0] === "all" || keys[0] === "any") && Array.isArray(node[keys[0]])) {
      var items = node[keys[0]].map(withoutIncomplete).filter(function (x) { return x !== null; });
      if (node[keys[0]].length && !items.length) { return null; }
      var out = {}; out[keys[0]] = items; return out;
    }
    return incomplete(node) ? null : node;
  }
  function markIncomplete() {
    Array.prototype.forEach.call(root.querySelectorAll(".rule-row"), function (row) {
      var bad = incomplete(row.ruleCondition);
      row.classList.toggle("incomplete", bad);
      var note = row.querySelector(".rule-note");
      if (note) { note.hidden = !bad; }
    });
  }

  /* -- rendering ------------------------------------------------------------------------- */
  function renderCondition(node, parent, index) {
    var cond = node.cond;
    var row = el("div", { "class": "rule-row" });
    var kind = kindOf(cond);
    var kindSel = select([["field", "Field"], ["interests", "Interests"], ["list", "List"],
      ["event", "Activity"], ["engagement", "Engagement"]], kind, "Condition type");
    kindSel.addEventListener("change", function () { node.cond = defaultCond(kindSel.value); changed(true); });
    row.appendChild(kindSel);

    if (kind === "field") {
      var f = fieldsByKey[cond.field] || { type: "text", choices: [] };
      var fieldSel = select(vocab.fields.map(function (x) { return [x.key, x.label]; }), cond.field, "Field");
      fieldSel.addEventListener("change", function () {
        var nf = fieldsByKey[fieldSel.value];
        var ops = vocab.ops[nf.type] || [];
        node.cond = { field: fieldSel.value, op: ops.indexOf(cond.op) >= 0 ? cond.op : ops[0], value: "" };
        changed(true);
      });
      var ops = vocab.ops[f.type] || [];
      var opSel = select(ops.map(function (o) { return [o, OP_LABELS[o] || o]; }), cond.op, "Operator");
      opSel.addEventListener("change", function () { cond.op = opSel.value; cond.value = cond.op === "exists" ? true : ""; changed(true); });
      row.appendChild(fieldSel); row.appendChild(opSel);
      row.appendChild(valueInput(cond, f));
    } else if (kind === "interests") {
      var mode = select([["has_any", "has any of"], ["has_all", "has all of"], ["has_none", "has none of"]], cond.interests, "Interest test");
      mode.addEventListener("change", function () { cond.interests = mode.value; changed(); });
      var multi = el("select", { multiple: "multiple", "aria-label": "Interests" });
      vocab.interests.forEach(function (i) {
        var o = el("option", { value: i.key, text: i.label });
        if ((cond.value || []).indexOf(i.key) >= 0) { o.selected = true; }
        multi.appendChild(o);
      });
      multi.addEventListener("change", function () {
        cond.value = Array.prototype.filter.call(multi.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
        changed();
      });
      row.appendChild(mode); row.appendChild(multi);
    } else if (kind === "list") {
      var listSel = select(vocab.lists.map(function (l) { return [l.slug, l.name]; }), cond.list, "List");
      listSel.addEventListener("change", function () { cond.list = listSel.value; changed(); });
      var st = select(vocab.statuses.map(function (s) { return [s, s]; }), cond.status || "confirmed", "Status");
      st.addEventListener("change", function () { cond.status = st.value; changed(); });
      row.appendChild(el("span", { text: "is on" })); row.appendChild(listSel);
      row.appendChild(el("span", { text: "as" })); row.appendChild(st);
    } else if (kind === "event") {
      var type = input(cond.event, { placeholder: "event type, e.g. product_viewed", "aria-label": "Event type" });
      type.addEventListener("input", function () { cond.event = type.value.trim(); changed(); });
      row.appendChild(type);
      row.appendChild(numberPart(cond, "at_least", "at least", "times"));
      row.appendChild(numberPart(cond, "within_days", "in the last", "days"));
      var key = Object.keys(cond.where || {})[0] || "";
      var pk = input(key.replace(/^properties\./, ""), { placeholder: "property", "aria-label": "Property", size: "10" });
      var pv = input(key ? cond.where[key] : "", { placeholder: "value", "aria-label": "Property value", size: "10" });
      var setWhere = function () {
        if (pk.value.trim()) { cond.where = {}; cond.where["properties." + pk.value.trim()] = pv.value; }
        else { delete cond.where; }
        changed();
      };
      pk.addEventListener("input", setWhere); pv.addEventListener("input", setWhere);
      row.appendChild(el("span", { text: "where" })); row.appendChild(pk); row.appendChild(el("span", { text: "=" })); row.appendChild(pv);
    } else {
      var eng = select(vocab.engagement.map(function (e) { return [e, e]; }), cond.engagement, "Engagement");
      eng.addEventListener("change", function () { cond.engagement = eng.value; changed(); });
      row.appendChild(eng);
      row.appendChild(numberPart(cond, "at_least", "at least", "times"));
      row.appendChild(numberPart(cond, "within_days", "in the last", "days"));
    }
    row.appendChild(removeButton(parent, index));
    row.appendChild(el("span", { "class": "rule-note hint", text: "incomplete: left out until it has a value" }));
    row.ruleCondition = cond;
    return row;
  }
  function numberPart(cond, key, before, after) {
    var wrap = el("span", { "class": "rule-num" }, [el("span", { text: before + " " })]);
    var i = input(cond[key] == null ? "" : cond[key], { type: "number", min: "0", "aria-label": before, size: "4" });
    i.addEventListener("input", function () {
      if (i.value === "") { delete cond[key]; } else { cond[key] = Number(i.value); }
      changed();
    });
    wrap.appendChild(i); wrap.appendChild(el("span", { text: " " + after }));
    return wrap;
  }
  function valueInput(cond, f) {
    var op = cond.op;
    if (op === "exists") {
      var ex = select([["true", "yes"], ["false", "no"]], cond.value === false ? "false" : "true", "Has a value");
      ex.addEventListener("change", function () { cond.value = ex.value === "true"; changed(); });
      return ex;
    }
    if (f.type === "boolean") {
      var b = select([["true", "yes"], ["false", "no"]], String(cond.value === true), "Value");
      b.addEventListener("change", function () { cond.value = b.value === "true"; changed(); });
      cond.value = cond.value === true;
      return b;
    }
    if ((f.type === "choice" || f.type === "multi_choice") && f.choices.length && op !== "in" && op !== "contains") {
      var c = select([["", ""]].concat(f.choices.map(function (x) { return [x, x]; })), cond.value, "Value");
      c.addEventListener("change", function () { cond.value = c.value; changed(); });
      return c;
    }
    var list = op === "in" || op === "between" || f.type === "multi_choice";
    var kind = op === "within_last_days" ? "number" : (f.type === "date" || f.type === "datetime") && !list ? "date" : "text";
    var attrs = { "aria-label": "Value", type: kind };
    if (list) { attrs.placeholder = op === "between" ? "low, high" : "a, b, c"; }
    var i = input(cond.value, attrs);
    i.addEventListener("input", function () {
      var itemType = op === "within_last_days" ? "number" : f.type;
      cond.value = list ? csv(i.value).map(function (x) { return typed(itemType, x); }) : typed(itemType, i.value);
      changed();
    });
    return i;
  }
  function removeButton(parent, index) {
    var b = el("button", { type: "button", "class": "secondary small", text: "✕", "aria-label": "Remove" });
    b.addEventListener("click", function () { parent.items.splice(index, 1); changed(true); });
    return b;
  }
  function renderGroup(group, parent, index) {
    var box = el("div", { "class": "rule-group" });
    var head = el("div", { "class": "rule-head" });
    var mode = select([["all", "All of these"], ["any", "Any of these"], ["none", "None of these"]], group.group, "Group");
    mode.addEventListener("change", function () { group.group = mode.value; changed(); });
    head.appendChild(mode);
    var addCond = el("button", { type: "button", "class": "secondary small", text: "+ Condition" });
    addCond.addEventListener("click", function () { group.items.push({ cond: defaultCond("field") }); changed(true); });
    var addGroup = el("button", { type: "button", "class": "secondary small", text: "+ Group" });
    addGroup.addEventListener("click", function () { group.items.push({ group: "any", items: [{ cond: defaultCond("field") }] }); changed(true); });
    head.appendChild(addCond); head.appendChild(addGroup);
    if (parent) { head.appendChild(removeButton(parent, index)); }
    box.appendChild(head);
    group.items.forEach(function (item, i) {
      box.appendChild(item.cond ? renderCondition(item, group, i) : renderGroup(item, group, i));
    });
    if (!group.items.length) { box.appendChild(el("p", { "class": "hint", text: "No condition: everyone in the chosen lists." })); }
    return box;
  }
  function render() {
    root.innerHTML = "";
    root.appendChild(renderGroup(model, null, 0));
    if (readOnly) { Array.prototype.forEach.call(root.querySelectorAll("select,input,button"), function (x) { x.disabled = true; }); }
    markIncomplete();
  }

  /* -- sync and count -------------------------------------------------------------------- */
  function lists() {
    return Array.prototype.filter.call(form.querySelectorAll('input[name="lists"]'), function (x) { return x.checked; })
      .map(function (x) { return x.value; });
  }
  var counter = 0;
  var pending = null;  /* the AbortController of the count in flight */
  var count = window.listmgr.debounce(function () {
    var mine = ++counter;
    /* A newer count makes the one in flight stale: cancel its request instead of letting
       counts pile up while typing (the server bounds each statement in time as well). */
    if (pending) { pending.abort(); pending = null; }
    var rules;
    try { rules = withoutIncomplete(JSON.parse(textarea.value || "{}")) || {}; }
    catch (e) { showError("The JSON is not valid: " + e.message); return; }
    countEl.classList.add("stale");
    var controller = window.AbortController ? new AbortController() : null;
    pending = controller;
    window.listmgr.api("POST", countUrl, { lists: lists(), rules: rules },
                       controller ? controller.signal : undefined).then(function (data) {
      if (pending === controller) { pending = null; }
      if (mine !== counter) { return; }
      countEl.textContent = data.count === null ? "fewer than " + data.fewer_than
        : data.count.toLocaleString();
      countEl.classList.remove("stale");
      showError("");
    }).catch(function (err) {
      if (pending === controller) { pending = null; }
      if (mine !== counter || (err && err.name === "AbortError")) { return; }
      countEl.textContent = "?";
      showError(err.message);
    });
  }, 250);
  function showError(message) { errorEl.textContent = message; errorEl.hidden = !message; }
  function changed(rerender) {
    textarea.value = JSON.stringify(toRules(model), null, 2);
    if (rerender) { render(); } else { markIncomplete(); }
    count();
  }
  function bindJson() {
    textarea.addEventListener("input", count);
    Array.prototype.forEach.call(form.querySelectorAll('input[name="lists"]'), function (x) { x.addEventListener("change", count); });
  }
  textarea.addEventListener("change", function () {
    try { model = toModel(JSON.parse(textarea.value)); if (!model.group) { model = { group: "all", items: [model] }; } render(); }
    catch (e) { /* keep the builder as it was; the count shows the error */ }
  });
  bindJson();
  render();
  count();
})();
