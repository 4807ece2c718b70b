// Render the Plotly figures the page embedded as JSON (no inline script: CSP-safe).
//
// Cycle charts (layout.meta.local_time_x, dashboard/web/charts.py) carry UTC ISO strings on a
// category x axis. Here each becomes a label in the viewer's time zone ("Nov 28, 09:00"), unique
// within the chart, and " (UTC)" in an axis title becomes the zone's name. Labels are built from
// numbers by Intl, never from log data, so they need no escaping.
(function () {
  "use strict";
  var ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z$/;
  var zone = (Intl.DateTimeFormat().resolvedOptions().timeZone || "local time");
  var short = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  var long = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function localLabels(values) {
    var labels = {};
    var used = {};
    values.forEach(function (v) {
      if (labels[v] !== undefined || !ISO.test(v)) { return; }
      var d = new Date(v);
      var label = short.format(d);
      if (used[label]) { label = long.format(d); }
      var n = 2;
      var base = label;
      while (used[label]) { label = base + " (" + n + ")"; n += 1; }
      used[label] = true;
      labels[v] = label;
    });
    return labels;
  }

  function localise(figure) {
    var values = [];
    figure.data.forEach(function (trace) { (trace.x || []).forEach(function (v) { values.push(v); }); });
    values.sort();
    var labels = localLabels(values);
    var swap = function (v) { return labels[v] !== undefined ? labels[v] : v; };
    figure.data.forEach(function (trace) { if (trace.x) { trace.x = trace.x.map(swap); } });
    (figure.layout.annotations || []).forEach(function (a) { a.x = swap(a.x); });
    Object.keys(figure.layout).forEach(function (key) {
      var axis = figure.layout[key];
      if (key.indexOf("xaxis") === 0 && axis && axis.title && typeof axis.title.text === "string") {
        axis.title.text = axis.title.text.replace(" (UTC)", " (" + zone + ")");
      }
    });
  }

  document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
    var source = document.getElementById(el.getAttribute("data-figure"));
    if (!source || !window.Plotly) { return; }
    var figure = JSON.parse(source.textContent);
    if (figure.layout && figure.layout.meta && figure.layout.meta.local_time_x) { localise(figure); }
    el.setAttribute("data-zone", zone);
    window.Plotly.newPlot(el, figure.data, figure.layout, figure.config || { responsive: true, displaylogo: false });
  });
})();
