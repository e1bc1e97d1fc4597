/* hokuro dashboard: times in the browser's zone (UTC kept in the tooltip), pausing live
   parts, confirmation of actions. MIT licence (hokuro's). */
(function () {
  "use strict";
  var paused = false;
  var skipped = false;  // updates were ignored while paused

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function localTimes(root) {
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.dataset.local) continue;
      var moment = new Date(node.getAttribute("datetime"));
      if (isNaN(moment.getTime())) continue;
      node.textContent = moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" +
        pad(moment.getDate()) + " " + pad(moment.getHours()) + ":" + pad(moment.getMinutes()) +
        ":" + pad(moment.getSeconds());
      node.dataset.local = "1";
    }
  }

  function showPaused() {
    var buttons = document.querySelectorAll("[data-live-toggle]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].textContent = paused ? "Resume live updates" : "Pause live updates";
      buttons[i].setAttribute("aria-pressed", paused ? "true" : "false");
    }
    document.body.classList.toggle("paused", paused);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    // The page's own handlers live here: the policy allows no inline script.
    document.addEventListener("change", function (e) {
      if (e.target.matches("[data-submit-on-change]")) e.target.form.submit();
    });
    document.addEventListener("click", function (e) {
      var asking = e.target.closest("[data-confirm]");
      if (asking && !window.confirm(asking.getAttribute("data-confirm"))) {
        e.preventDefault();
        return;
      }
      var toggle = e.target.closest("[data-live-toggle]");
      if (!toggle) return;
      paused = !paused;
      // Resumed after ignoring updates: show the state now (a stream that ended while
      // paused sends nothing more).
      if (!paused && skipped) { window.location.reload(); return; }
      showPaused();
    });
    showPaused();
  });
  // A paused page ignores the updates the server sends (the stream stays open).
  document.addEventListener("htmx:sseBeforeMessage", function (e) {
    if (paused) { skipped = true; e.preventDefault(); }
  });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  document.addEventListener("htmx:sseMessage", function (e) { localTimes(e.target); });
})();
