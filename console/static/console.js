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

// The browser's time zone, for "times in: local" (read by the server).
try {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && document.cookie.indexOf("crontrio_localtz=" + encodeURIComponent(zone)) < 0) {
    document.cookie = "crontrio_localtz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Strict";
  }
} catch (error) {
  // No Intl time zone: "local" stays UTC.
}

document.addEventListener("DOMContentLoaded", function () {
  // Ask before destructive or costly actions (buttons with data-confirm).
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  // A running run's output, live (Server-Sent Events); see liveOutput.
  var live = document.querySelector("pre[data-live]");
  if (live && window.EventSource) {
    liveOutput(live);
  }

  var preview = document.getElementById("spec-preview");
  if (preview) {
    specPreview(preview);
  }

  // Keep the newest output in view.
  var output = document.getElementById("output");
  if (output) {
    output.scrollTop = output.scrollHeight;
  }
});


// Follows a running run's output. What was shown is kept in sessionStorage
// with its byte offset, so a reload asks only for what came after it
// (?offset=); a dropped connection resumes by itself (EventSource sends
// Last-Event-ID, the offset of the last event). Text goes in with
// textContent only: output never becomes markup.
function liveOutput(pre) {
  var key = "crontrio.output." + pre.getAttribute("data-run");
  var note = document.getElementById("live-note");
  var offset = 0;
  var saved = null;
  try {
    saved = JSON.parse(window.sessionStorage.getItem(key) || "null");
  } catch (error) {
    saved = null;
  }
  if (saved && typeof saved.offset === "number" && typeof saved.text === "string") {
    pre.textContent = saved.text;
    offset = saved.offset;
  }
  var source = new EventSource(pre.getAttribute("data-live") + "?offset=" + offset);
  function showStatus(value) {
    document.querySelectorAll(".run-status").forEach(function (cell) {
      var badge = document.createElement("span");
      badge.className = "status status-" + value.replace(/[^a-z_]/g, "");
      badge.textContent = value;
      cell.replaceChildren(badge);
    });
  }
  source.addEventListener("output", function (event) {
    var data = JSON.parse(event.data);
    if (!pre.textContent) {
      showStatus("running"); // it printed: it is no longer waiting
    }
    var following = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.appendChild(document.createTextNode(data.text));
    offset = parseInt(event.lastEventId, 10) || offset;
    try {
      window.sessionStorage.setItem(key, JSON.stringify({ offset: offset, text: pre.textContent }));
    } catch (error) {
      // Storage full or refused: a reload then starts from the beginning.
    }
    if (following) {
      pre.scrollTop = pre.scrollHeight;
    }
  });
  source.addEventListener("end", function (event) {
    var data = JSON.parse(event.data);
    source.close();
    window.sessionStorage.removeItem(key);
    showStatus(data.status);
    if (note) {
      note.textContent = note.getAttribute("data-ended") + ": " + data.status;
      note.setAttribute("data-status", data.status);
    }
  });
  source.addEventListener("error", function () {
    // A refusal (e.g. too many followers) closes the stream for good; a
    // dropped connection is retried by EventSource itself.
    if (source.readyState === EventSource.CLOSED && note) {
      note.textContent = note.getAttribute("data-unavailable");
    }
  });
  source.addEventListener("failure", function (event) {
    source.close();
    if (note) {
      note.textContent = JSON.parse(event.data).message;
    }
  });
}

// "2026-12-06 02:30:00 Europe/Berlin": an instant in a zone, always labelled.
function inZone(ms, zone) {
  var parts = {};
  new Intl.DateTimeFormat("en-CA", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit"
  }).formatToParts(new Date(ms)).forEach(function (part) { parts[part.type] = part.value; });
  return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" +
    parts.second + " " + zone;
}

// The job form's spec preview: the next fire times as you type (PreviewSpec
// through the JSON API, at most one call per pause in typing). Without this
// script the form shows them after a submit.
function specPreview(box) {
  var spec = document.getElementById("in-spec");
  var zone = document.getElementById("in-timezone");
  var name = document.getElementById("in-name");
  var timer = null;
  var asked = 0;
  function show(items, error) {
    var list = document.createElement("ol");
    list.className = "times";
    items.forEach(function (text) {
      var item = document.createElement("li");
      item.textContent = text[0];
      if (text[1]) {
        var utc = document.createElement("span");
        utc.className = "muted";
        utc.textContent = " " + text[1];
        item.appendChild(utc);
      }
      list.appendChild(item);
    });
    box.replaceChildren(list);
    if (items.length) {
      // The spec reads now: the server's earlier complaint about it is stale.
      ["spec", "timezone"].forEach(function (name) {
        var stale = document.getElementById("err-" + name);
        if (stale) {
          stale.remove();
          document.getElementById("field-" + name).classList.remove("invalid");
        }
      });
    }
    if (error) {
      var message = document.createElement("p");
      message.className = "error preview-error";
      message.setAttribute("role", "alert");
      message.textContent = error;
      box.appendChild(message);
    }
  }
  function ask() {
    var tz = zone && zone.value.trim() ? zone.value.trim() : "UTC";
    if (!spec.value.trim()) {
      show([], "");
      return;
    }
    var mine = ++asked;
    var query = "?count=" + (box.getAttribute("data-count") || "5") + "&spec=" + encodeURIComponent(spec.value) +
      "&tz=" + encodeURIComponent(tz) + "&job=" + encodeURIComponent(name ? name.value : "");
    window.crontrio.api("GET", "/spec/preview" + query).then(function (data) {
      if (mine !== asked) {
        return; // an answer to an older question
      }
      show((data.fireMs || []).map(function (ms) {
        var at = Number(ms);
        try {
          return [inZone(at, tz), tz === "UTC" ? "" : inZone(at, "UTC")];
        } catch (error) {
          return [inZone(at, "UTC"), ""];
        }
      }), "");
    }).catch(function (error) {
      if (mine === asked) {
        show([], error.message);
      }
    });
  }
  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(ask, 300);
  }
  [spec, zone, name].forEach(function (input) {
    if (input) {
      input.addEventListener("input", later);
    }
  });
}
