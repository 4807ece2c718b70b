// Times in the viewer's zone (UTC on hover), and live progress bars (no page reload).
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.textContent = fmt.format(d);
        el.title = el.getAttribute("datetime").replace("T", " ") + " (UTC)";
      }
    });
  }
  function whenHtml(iso) {
    var t = document.createElement("time");
    t.setAttribute("datetime", iso);
    t.textContent = iso;
    return t;
  }
  function update(box, cycle) {
    if (!cycle || !cycle.progress) { return; }
    var p = cycle.progress;
    var pct = p.percent === null ? 0 : p.percent;
    box.querySelector(".fill").style.width = pct + "%";
    box.querySelector(".bar").setAttribute("aria-valuenow", String(pct));
    box.querySelector(".pct").textContent = (p.percent === null ? "?" : Math.round(p.percent)) + "%";
    box.querySelector(".processed").textContent = String(p.processed_users);
    box.querySelector(".expected").textContent = p.expected_users === null ? "?" : String(p.expected_users);
    box.querySelector(".kind").textContent = cycle.kind;
    box.querySelector(".state").textContent = cycle.state;
    box.querySelector(".elapsed").textContent = Math.floor(p.elapsed_s / 60) + " min " + Math.floor(p.elapsed_s % 60) + " s";
    box.querySelector(".quiet").textContent = p.quiet_s > 60 ? "· quiet for " + Math.floor(p.quiet_s / 60) + " min" : "";
    var eta = box.querySelector(".eta");
    eta.textContent = "";
    if (p.eta) {
      eta.appendChild(document.createTextNode("· ETA "));
      var t = whenHtml(p.eta);
      eta.appendChild(t);
      localise(eta);
    }
  }
  function poll() {
    document.querySelectorAll("[data-progress-url]").forEach(function (box) {
      fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) { update(box, data.cycle); } })
        .catch(function () { /* keep the last value; try again on the next tick */ });
    });
  }
  localise(document);
  if (document.querySelector("[data-progress-url]")) { setInterval(poll, 2000); }
})();
