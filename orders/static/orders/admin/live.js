/* Keeps an admin page's figures fresh: every data-live-every seconds, fetch the page's
   fragment (data-live-url) and put it in place. No library, nothing from another site. */
(function () {
  "use strict";
  var region = document.querySelector("[data-live-url]");
  if (!region) { return; }
  var every = Number(region.getAttribute("data-live-every") || 5) * 1000;
  var status = document.getElementById("live-status");

  function say(text) { if (status) { status.textContent = text; } }

  function schedule() { window.setTimeout(refresh, every); }

  function refresh() {
    if (document.hidden) { schedule(); return; }
    fetch(region.getAttribute("data-live-url"), {
      credentials: "same-origin",
      headers: { "X-Requested-With": "XMLHttpRequest" }
    }).then(function (response) {
      if (response.redirected) { window.location.reload(); return null; }  // logged out
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      if (html === null) { return; }
      region.innerHTML = html;
      region.setAttribute("data-refreshed", String(Number(region.getAttribute("data-refreshed") || 0) + 1));
      region.classList.remove("live-stale");
      say("");
    }).catch(function (error) {
      region.classList.add("live-stale");
      say("Could not refresh (" + error.message + "); trying again.");
    }).then(schedule);
  }

  schedule();
})();
