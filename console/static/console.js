// crontrio console: progressive enhancement only. Every page and form works
// without this file; it adds confirmations and refreshes running runs.
"use strict";

// Calls of the JSON API from the pages: the session cookie goes along and
// the CSRF token (from the page's meta tag) in the X-CSRF-Token header.
window.crontrio = {
  api: function (method, path, body) {
    var meta = document.querySelector("meta[name=csrf-token]");
    var headers = { "X-CSRF-Token": meta ? meta.getAttribute("content") : "" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    return fetch("/api/v1" + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          throw new Error((data.error && data.error.message) || response.statusText);
        }
        return data;
      });
    });
  }
};

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
