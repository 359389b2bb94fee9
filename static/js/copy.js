/* Copy buttons: <button data-copy="ID" hidden> copies the value of the field #ID and says so
   in the element [data-copy-status="ID"]. Without JavaScript the button stays hidden and the
   field is a plain read-only text field to select and copy. (A file of its own: the Content
   Security Policy allows no inline script.) */
(function () {
  "use strict";
  function say(id, text) {
    var status = document.querySelector('[data-copy-status="' + id + '"]');
    if (status) { status.textContent = text; }
  }
  function copy(button) {
    var id = button.getAttribute("data-copy");
    var field = document.getElementById(id);
    if (!field) { return; }
    var done = function () { say(id, "Copied to the clipboard."); };
    var failed = function () {
      field.focus();
      field.select();
      say(id, "Could not copy: the text is selected, press Ctrl+C (or ⌘C) to copy it.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, failed);
    } else {
      field.select();
      try { if (document.execCommand("copy")) { done(); } else { failed(); } } catch (e) { failed(); }
    }
  }
  function init() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
