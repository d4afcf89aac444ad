/* The schedule form's time zone starts as the browser's own until one was chosen (without
   this file it starts as UTC; a zone picked before this file ran stays picked). */
(function () {
  "use strict";
  var select = document.getElementById("schedule-timezone");
  if (!select || !select.hasAttribute("data-browser-zone") || !window.Intl) { return; }
  if (window.listmgr && window.listmgr.changedSinceLoad(select)) { return; }
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; return; }
  }
})();
