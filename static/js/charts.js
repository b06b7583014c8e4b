// Draws every chart rendered by core.charts: the figure JSON sits in a non-executed
// <script type="application/json"> element, so no inline script is needed (CSP-safe).
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll("[data-plotly-chart]").forEach(function (element) {
      var payload = document.getElementById(element.dataset.plotlyChart);
      if (!payload || element.dataset.drawn) { return; }
      var figure = JSON.parse(payload.textContent);
      window.Plotly.newPlot(element, figure.data, figure.layout, figure.config);
      element.dataset.drawn = "true";
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
  document.addEventListener("htmx:afterSettle", draw);
})();
