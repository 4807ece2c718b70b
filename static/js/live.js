// Live progress bars: poll each bar's JSON and update it in place (no page reload).
(function () {
  "use strict";
  function update(box, cycle) {
    if (!cycle || !cycle.progress) { return; }
    var p = cycle.progress;
    var pct = p.percent === null ? 0 : p.percent;
    var bar = box.querySelector(".bar");
    var fill = box.querySelector(".fill");
    fill.style.width = pct + "%";
    bar.setAttribute("aria-valuenow", String(pct));
    box.querySelector(".pct").textContent = (p.percent === null ? "?" : Math.round(p.percent)) + "%";
    box.querySelector(".processed").textContent = String(p.processed_users);
    box.querySelector(".expected").textContent = p.expected_users === null ? "?" : String(p.expected_users);
    box.querySelector(".kind").textContent = cycle.kind;
    box.querySelector(".state").textContent = cycle.state;
  }
  function poll() {
    document.querySelectorAll("[data-progress-url]").forEach(function (box) {
      fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) { update(box, data.cycle); } })
        .catch(function () { /* keep the last value; try again next tick */ });
    });
  }
  setInterval(poll, 3000);
})();
