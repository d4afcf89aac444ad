/* listmgr visual body editor (Squire, served from /static/vendor): when the "Visual" format is
   chosen, the body is edited as formatted text and the HTML it makes is kept in the body
   textarea, which the form sends. Other formats edit the textarea itself. */
(function () {
  "use strict";
  var area = document.getElementById("body");
  var box = document.getElementById("visual-editor");
  var root = document.getElementById("visual-body");
  if (!area || !box || !root || !window.Squire || !window.DOMPurify || area.readOnly) { return; }
  var form = area.form;
  var editor = null;

  function format() {
    var r = form.querySelector('input[name="content_format"]:checked');
    return r ? r.value : "html";
  }
  function sync() {
    area.value = editor.getHTML();
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function show() {
    var visual = format() === "visual";
    if (visual) {
      if (!editor) {
        editor = new window.Squire(root, { blockTag: "P" });
        editor.addEventListener("input", sync);
      }
      editor.setHTML(area.value);
    }
    box.hidden = !visual;
    area.hidden = visual;
  }

  Array.prototype.forEach.call(box.querySelectorAll("[data-command]"), function (button) {
    button.addEventListener("mousedown", function (ev) { ev.preventDefault(); });  /* keep the selection */
    button.addEventListener("click", function () {
      var command = button.getAttribute("data-command");
      if (command === "makeLink") {
        var url = window.prompt("Link address", "https://");
        if (!url) { return; }
        editor.makeLink(url);
      } else {
        editor[command]();
      }
      editor.focus();
      sync();
    });
  });
  Array.prototype.forEach.call(form.querySelectorAll('input[name="content_format"]'), function (r) {
    r.addEventListener("change", show);
  });
  show();
})();
