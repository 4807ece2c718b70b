// Times in the viewer's zone with the zone's name (UTC on hover, and a toggle to show UTC), and the
// live job card (progress bar, counts, last traffic, state badge) refreshed by one JSON poll.
(function () {
  "use strict";
  var KEY = "times-in-utc";
  function inUtc() {
    try { return window.localStorage.getItem(KEY) === "1"; } catch (e) { return false; }
  }
  function formatter() {
    var opts = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
                 hourCycle: "h23", timeZoneName: "short" };
    if (inUtc()) { opts.timeZone = "UTC"; }
    return new Intl.DateTimeFormat(undefined, opts);
  }
  function localise(root) {
    var fmt = formatter();
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var iso = el.getAttribute("datetime");
      var d = new Date(iso);
      if (!isNaN(d)) {
        el.textContent = fmt.format(d);
        el.title = iso.slice(0, 19).replace("T", " ") + " UTC";
      }
    });
  }
  // A moment written as text by the server ("2026-11-28 08:11 UTC", "2026-11-28T08:11:00Z") in an
  // <option> (an option cannot hold a <time>): shown in the reader's zone, UTC in its title.
  var UTC_TEXT = /(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)? ?(?:UTC|Z)/;
  function localiseOptions(root) {
    var fmt = formatter();
    root.querySelectorAll("option").forEach(function (o) {
      var original = o.getAttribute("data-utc-text");
      if (original === null) {
        if (!UTC_TEXT.test(o.textContent)) { return; }
        original = o.textContent;
        o.setAttribute("data-utc-text", original);
      }
      var m = UTC_TEXT.exec(original);
      var d = new Date(m[1] + "T" + m[2] + ":00Z");
      if (!isNaN(d)) {
        o.textContent = original.replace(UTC_TEXT, fmt.format(d));
        o.title = m[1] + " " + m[2] + " UTC";
      }
    });
  }
  function zoneName() {
    if (inUtc()) { return "UTC"; }
    var part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(new Date())
      .filter(function (p) { return p.type === "timeZoneName"; })[0];
    return part ? part.value : "local";
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function inputValue(d) {
    if (inUtc()) {
      return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + "T" +
        pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    }
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  // Filter inputs that take RFC 3339 UTC (name since/until): the reader types local time (or UTC
  // with the toggle) in a datetime-local field; the form still sends RFC 3339 UTC.
  var pickers = [];
  function renderPicker(pair) {
    var d = pair.utc.value ? new Date(pair.utc.value) : null;
    pair.local.value = d && !isNaN(d) ? inputValue(d) : "";
    if (pair.label) { pair.label.nodeValue = pair.label.nodeValue.replace(/\((UTC|[^)]*)\)/, "(" + zoneName() + ")"); }
  }
  function localInputs() {
    document.querySelectorAll("form input[type=text][name=since], form input[type=text][name=until]").forEach(function (utc) {
      var local = document.createElement("input");
      local.type = "datetime-local";
      local.className = "local-time";
      local.setAttribute("data-for", utc.name);
      var label = null;
      var holder = utc.closest("label");
      if (holder) {
        holder.childNodes.forEach(function (n) { if (n.nodeType === 3 && /\(UTC\)/.test(n.nodeValue)) { label = n; } });
      }
      var pair = { utc: utc, local: local, label: label };
      if (utc.value && isNaN(new Date(utc.value))) { return; }  // leave a value we cannot read to the server's check
      utc.type = "hidden";
      utc.parentNode.insertBefore(local, utc);
      local.addEventListener("change", function () {
        if (!local.value) { utc.value = ""; return; }
        var d = new Date(local.value + (inUtc() ? ":00Z" : ""));
        utc.value = isNaN(d) ? "" : d.toISOString().replace(".000Z", "Z");
      });
      pickers.push(pair);
      renderPicker(pair);
    });
  }
  function toggle() {
    var header = document.querySelector("header.top nav") || document.querySelector("header.top");
    if (!header || !(document.querySelector("time[datetime]") || document.querySelector("option[data-utc-text]") ||
                     pickers.length)) { return; }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link tz-toggle";
    function label() { button.textContent = inUtc() ? "Times: UTC" : "Times: local"; }
    label();
    button.setAttribute("aria-label", "Show times in UTC or in your zone");
    button.addEventListener("click", function () {
      try { window.localStorage.setItem(KEY, inUtc() ? "0" : "1"); } catch (e) { /* private mode: no memory */ }
      label();
      localise(document);
      localiseOptions(document);
      pickers.forEach(renderPicker);
    });
    header.appendChild(button);
  }
  function timeEl(iso) {
    var t = document.createElement("time");
    t.setAttribute("datetime", iso);
    t.textContent = iso;
    return t;
  }
  function setTime(el, iso) {
    if (!el) { return; }
    el.textContent = "";
    if (iso) { el.appendChild(timeEl(iso)); localise(el); } else { el.textContent = "–"; }
  }
  var TONES = ["running", "healthy", "warning", "quarantined", "disabled", "stalled"];
  function tone(state, p) {
    return ["quarantined", "disabled", "stalled", "warning"].indexOf(state) >= 0 ? state : p.tone;
  }
  function update(box, cycle, health) {
    if (!cycle || !cycle.progress) { return; }
    var p = cycle.progress;
    var pct = p.percent === null ? 0 : p.percent;
    var fill = box.querySelector(".fill");
    fill.style.width = pct + "%";
    var t = tone(health ? health.state : null, p);
    TONES.forEach(function (name) { fill.classList.remove("tone-" + name); });
    fill.classList.add("tone-" + t);
    box.setAttribute("data-tone", t);
    box.querySelector(".bar").setAttribute("aria-valuenow", String(pct));
    box.querySelector(".pct").textContent = (p.percent === null ? "?" : Math.round(p.percent)) + "%";
    box.querySelector(".summary").textContent = p.summary;
    box.querySelector(".basis").textContent = p.expected_basis ? "(expected from " + p.expected_basis + ")" : "";
    box.querySelector(".kind").textContent = cycle.kind;
    box.querySelector(".state").textContent = p.quiet ? "quiet" : cycle.state;
    box.querySelector(".elapsed").textContent = Math.floor(p.elapsed_s / 60) + " min " + Math.floor(p.elapsed_s % 60) + " s";
    box.querySelector(".quiet").textContent = p.quiet_s > 60 ? "· quiet for " + Math.floor(p.quiet_s / 60) + " min" : "";
    var eta = box.querySelector(".eta");
    eta.textContent = "";
    if (p.eta) {
      eta.appendChild(document.createTextNode("· ETA "));
      eta.appendChild(timeEl(p.eta));
      localise(eta);
    } else if (p.eta_withheld === "rejected") {
      eta.textContent = "· no ETA: every call is rejected (401/403)";
    } else if (p.eta_withheld === "quiet") {
      eta.textContent = "· no ETA while quiet";
    }
    var scope = box.closest("[data-job]") || document;
    var counts = scope.querySelector("[data-live=counts]");
    if (counts) {
      counts.textContent = cycle.requests + " request" + (cycle.requests === 1 ? "" : "s") + " · " +
        cycle.totals.success + " succeeded, " + cycle.totals.failure + " failed, " + cycle.totals.skipped + " skipped";
    }
    if (health) {
      setTime(scope.querySelector("[data-live=last-traffic]"), health.last_traffic);
      var badge = scope.querySelector("[data-live=state]") || scope.querySelector("h1 .badge, h2 .badge");
      if (badge) {
        badge.className = "badge state-" + health.state;
        badge.textContent = health.state_label || health.state;
        badge.title = health.state_label || health.state;
      }
    }
  }
  function poll() {
    document.querySelectorAll("[data-progress-url]").forEach(function (box) {
      fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) { update(box, data.cycle, data.health); } })
        .catch(function () { /* keep the last value; try again on the next tick */ });
    });
  }
  localise(document);
  localiseOptions(document);
  localInputs();
  toggle();
  if (document.querySelector("[data-progress-url]")) { setInterval(poll, 2000); }
})();
