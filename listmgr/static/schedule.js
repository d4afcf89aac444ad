/* The schedule form's time zone starts as the browser's own until one was chosen (without
   this file it starts as UTC). */
(function () {
  "use strict";
  var select = document.getElementById("schedule-timezone");
  if (!select || !select.hasAttribute("data-browser-zone") || !window.Intl) { return; }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; return; }
  }
})();
