// Linked Artifacts pages: live refresh and the as-of "Now" button. Everything works without this script;
// it only saves reloads. The refreshed HTML is rendered (and escaped) by the server's templates.
(function () {
  "use strict";

  document.querySelectorAll("button[data-now]").forEach(function (button) {
    button.addEventListener("click", function () {
      var form = button.form;
      if (form && form.elements.namedItem("as_of")) {
        form.elements.namedItem("as_of").value = "";
        form.submit();
      }
    });
  });

  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!live || !live.dataset.live) { return; }
  var seen = Number(live.dataset.pulse);
  var every = Number(live.dataset.refreshMs) || 5000;
  var busy = false;
  var timer = null;

  function show(text, state) {
    if (!status) { return; }
    status.textContent = text;  // text only: never markup
    status.className = "live " + state;
  }

  function clock() {
    return new Date().toISOString().slice(11, 19) + " UTC";
  }

  async function refresh() {
    var response = await fetch(live.dataset.live, { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (!response.ok) { throw new Error("page " + response.status); }
    var data = await response.json();
    live.innerHTML = data.html;
    seen = data.events;
    live.dataset.pulse = String(seen);
    show("updated " + clock() + " · " + seen + " events", "on");
  }

  async function tick() {
    if (busy || document.hidden) { return; }
    busy = true;
    try {
      var response = await fetch("/web/pulse", { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (response.status === 401) {
        show("session ended: reload the page to log in", "off");
        clearInterval(timer);
        return;
      }
      if (!response.ok) { show("refresh paused (" + response.status + ")", "off"); return; }
      var pulse = await response.json();
      if (pulse.events !== seen) { await refresh(); } else { show("live · " + seen + " events", "on"); }
    } catch (error) {
      show("refresh paused: the worker is not answering", "off");
    } finally {
      busy = false;
    }
  }

  show("live · " + seen + " events", "on");
  timer = setInterval(tick, every);
})();
