// crontrio console: progressive enhancement only. Every page and form works
// without this file; it adds confirmations and refreshes running runs.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Ask before destructive or costly actions (buttons with data-confirm).
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // A running run's page reloads itself until the run ends.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    var seconds = parseInt(refresh.getAttribute("data-refresh"), 10) || 3;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }

  // Keep the newest output in view.
  var output = document.getElementById("output");
  if (output) {
    output.scrollTop = output.scrollHeight;
  }
});
