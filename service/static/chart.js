// A small monthly line chart drawn as inline SVG: bands (intervals), lines and
// markers over a month axis. Written for this page alone, so it needs no library
// and no network; it knows months, thousands separators and nothing else.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const MARGIN = { top: 12, right: 16, bottom: 34, left: 64 };

  function el(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes || {})) {
      node.setAttribute(key, String(value));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  // "1994-09-01" -> months since year 0, the unit of the x axis.
  function monthIndex(date) {
    return Number(date.slice(0, 4)) * 12 + Number(date.slice(5, 7)) - 1;
  }

  function monthText(index) {
    const year = Math.floor(index / 12);
    const month = String((index % 12) + 1).padStart(2, "0");
    return `${year}-${month}`;
  }

  // Round steps (1, 2, 2.5, 5 x 10^n) giving about `count` ticks over [low, high].
  function niceTicks(low, high, count) {
    const span = high - low || Math.abs(high) || 1;
    const raw = span / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const ticks = [];
    for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
      ticks.push(Number(t.toPrecision(12)));
    }
    return ticks;
  }

  function shortNumber(value) {
    const size = Math.abs(value);
    if (size >= 1e9) return `${+(value / 1e9).toFixed(2)}G`;
    if (size >= 1e6) return `${+(value / 1e6).toFixed(2)}M`;
    if (size >= 1e4) return `${+(value / 1e3).toFixed(1)}k`;
    // Three significant digits below 1 (0.0024, not 0): sales in a large unit.
    return String(size < 1 ? +value.toPrecision(3) : +value.toFixed(2));
  }

  function extent(layers) {
    let low = Infinity, high = -Infinity, first = Infinity, last = -Infinity;
    for (const layer of layers) {
      for (const p of layer.points) {
        first = Math.min(first, p.x);
        last = Math.max(last, p.x);
        for (const y of layer.kind === "band" ? [p.low, p.high] : [p.y]) {
          low = Math.min(low, y);
          high = Math.max(high, y);
        }
      }
    }
    return { low, high, first, last };
  }

  function pathOf(points, x, y) {
    return points.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
  }

  function bandPath(points, x, y) {
    const top = points.map((p) => `${x(p.x).toFixed(1)},${y(p.high).toFixed(1)}`);
    const bottom = points.slice().reverse()
      .map((p) => `${x(p.x).toFixed(1)},${y(p.low).toFixed(1)}`);
    return `M${top.join("L")}L${bottom.join("L")}Z`;
  }

  function drawAxes(svg, box, scale, range, format) {
    const axes = el("g", { class: "axes", "aria-hidden": "true" }, svg);
    for (const tick of niceTicks(range.low, range.high, 5)) {
      const ty = scale.y(tick);
      el("line", { x1: box.left, x2: box.right, y1: ty, y2: ty, class: "grid" }, axes);
      const label = el("text", { x: box.left - 8, y: ty + 4, class: "tick y-tick",
                                 "text-anchor": "end" }, axes);
      label.textContent = format(tick);
    }
    const years = (range.last - range.first) / 12;
    const every = [1, 2, 5, 10, 20, 50].find((n) => years / n <= (box.right - box.left) / 70)
      || 100;
    const firstYear = Math.ceil(range.first / 12);
    for (let year = firstYear; year * 12 <= range.last; year += 1) {
      if (year % every !== 0) continue;
      const tx = scale.x(year * 12);
      el("line", { x1: tx, x2: tx, y1: box.bottom, y2: box.bottom + 5, class: "axis" },
        axes);
      const label = el("text", { x: tx, y: box.bottom + 20, class: "tick x-tick",
                                 "text-anchor": "middle" }, axes);
      label.textContent = String(year);
    }
    el("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom,
                 class: "axis" }, axes);
  }

  // layers: [{kind: "band"|"line", className, label, points, markers?}], drawn in
  // order; a band's points are {x, low, high}, a line's {x, y, title?}. x is a month
  // index. `marker` draws a vertical line at that month (where the forecast starts).
  function render(container, spec) {
    container.textContent = "";
    const width = Math.max(280, Math.round(container.clientWidth || 720));
    const height = width < 520 ? 260 : 360;
    const layers = spec.layers.filter((layer) => layer.points.length > 0);
    if (layers.length === 0) return null;

    const range = extent(layers);
    const pad = (range.high - range.low) * 0.05 || Math.abs(range.high) * 0.05 || 1;
    range.low -= pad;
    range.high += pad;
    if (range.first === range.last) { range.first -= 1; range.last += 1; }
    const box = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top,
                  bottom: height - MARGIN.bottom };
    const scale = {
      x: (m) => box.left + (m - range.first) / (range.last - range.first)
        * (box.right - box.left),
      y: (v) => box.bottom - (v - range.low) / (range.high - range.low)
        * (box.bottom - box.top),
    };

    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`,
                            role: "img", "aria-labelledby": "chart-title chart-desc",
                            class: "chart-svg" }, container);
    el("title", { id: "chart-title" }, svg).textContent = spec.title;
    el("desc", { id: "chart-desc" }, svg).textContent = spec.description;
    drawAxes(svg, box, scale, range, spec.format || shortNumber);

    if (spec.marker !== undefined) {
      const mx = scale.x(spec.marker);
      el("line", { x1: mx, x2: mx, y1: box.top, y2: box.bottom, class: "start-line",
                   "aria-hidden": "true" }, svg);
    }
    for (const layer of layers) {
      const group = el("g", { class: `layer ${layer.className}`,
                              "data-points": layer.points.length }, svg);
      if (layer.kind === "band") {
        el("path", { d: bandPath(layer.points, scale.x, scale.y), class: "band" }, group);
        continue;
      }
      el("polyline", { points: pathOf(layer.points, scale.x, scale.y), class: "line",
                       fill: "none" }, group);
      if (!layer.markers) continue;
      for (const p of layer.points) {
        const dot = el("circle", { cx: scale.x(p.x).toFixed(1), cy: scale.y(p.y).toFixed(1),
                                   r: 3.5, class: "point" }, group);
        el("title", {}, dot).textContent = p.title || `${monthText(p.x)}: ${p.y}`;
      }
    }
    return svg;
  }

  window.SalesChart = { render, monthIndex, monthText, niceTicks };
})();
