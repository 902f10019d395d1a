// Zoom every time-series chart of the report to one time range: drag across any chart, or type
// the range; "whole run" resets. The charts are SVG whose plot areas are drawn in seconds on x,
// so zooming is changing their viewBox and redrawing the axis ticks.
(function () {
  "use strict";
  const charts = Array.from(document.querySelectorAll("svg.chart.series"));
  if (!charts.length) return;
  const full = [Number(charts[0].dataset.t0), Number(charts[0].dataset.t1)];
  const from = document.getElementById("zoom-from");
  const to = document.getElementById("zoom-to");

  function niceTicks(lo, hi) {
    const raw = (hi - lo) / 8;
    let step = Math.pow(10, Math.floor(Math.log10(raw)));
    step *= [1, 2, 5, 10].find((m) => raw <= step * m);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Number(t.toFixed(6)));
    return out;
  }

  function zoom(lo, hi) {
    if (!(hi > lo)) return;
    for (const chart of charts) {
      const plot = chart.querySelector("svg.plot");
      const box = plot.viewBox.baseVal;
      plot.setAttribute("viewBox", `${lo} 0 ${hi - lo} ${box.height}`);
      const axis = chart.querySelector("g.xaxis");
      const width = Number(plot.getAttribute("width"));
      axis.querySelectorAll("g.tick").forEach((g) => g.remove());
      for (const t of niceTicks(lo, hi)) {
        const g = document.createElementNS("http://www.w3.org/2000/svg", "g");
        g.setAttribute("class", "tick");
        g.setAttribute("transform", `translate(${((t - lo) / (hi - lo)) * width},0)`);
        g.innerHTML = `<line y2="4" stroke="#999"/><text y="16" text-anchor="middle">${t}</text>`;
        axis.appendChild(g);
      }
    }
    from.value = lo.toFixed(1);
    to.value = hi.toFixed(1);
  }

  function timeAt(chart, event) {
    const plot = chart.querySelector("svg.plot");
    const rect = plot.getBoundingClientRect();
    const box = plot.viewBox.baseVal;
    return box.x + ((event.clientX - rect.left) / rect.width) * box.width;
  }

  for (const chart of charts) {
    let start = null;
    chart.addEventListener("mousedown", (e) => { start = timeAt(chart, e); e.preventDefault(); });
    chart.addEventListener("mouseup", (e) => {
      if (start === null) return;
      const end = timeAt(chart, e);
      if (Math.abs(end - start) > 0.05) zoom(Math.min(start, end), Math.max(start, end));
      start = null;
    });
  }
  document.getElementById("zoom-apply").addEventListener("click", () => zoom(Number(from.value), Number(to.value)));
  document.getElementById("zoom-reset").addEventListener("click", () => zoom(full[0], full[1]));
  zoom(full[0], full[1]);
  document.body.dataset.zoom = "ready";  // tests read this from the rendered page
})();
