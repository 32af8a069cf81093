// pyti plots: small SVG charts drawn with the DOM (no library, no build step).
// Labels and tooltips are set with textContent only: values may come from packages.
// Colours come from CSS classes in style.css (the CSP allows no inline style).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function svgTitle(text) {
  return svgEl("title", {}, text);
}

// A CSS class token from untrusted text (only a-z and _ survive).
function token(text) {
  return String(text ?? "").replace(/[^a-z_]/g, "");
}

const PLOT = { width: 320, height: 120, left: 34, right: 6, top: 8, bottom: 20 };

function frame(container, yMax, yLabel) {
  const svg = svgEl("svg", { viewBox: `0 0 ${PLOT.width} ${PLOT.height}`, class: "plot",
    role: "img", "aria-label": yLabel });
  const innerH = PLOT.height - PLOT.top - PLOT.bottom;
  for (const frac of [0, 0.5, 1]) {
    const y = PLOT.top + innerH * (1 - frac);
    svg.append(svgEl("line", { x1: PLOT.left, x2: PLOT.width - PLOT.right, y1: y, y2: y, class: "grid" }));
    const value = yMax * frac;
    svg.append(svgEl("text", { x: PLOT.left - 3, y: y + 3, class: "axis", "text-anchor": "end" },
      Number.isInteger(value) ? value : value.toFixed(1)));
  }
  container.replaceChildren(svg);
  return svg;
}

function scaleY(value, yMax) {
  const innerH = PLOT.height - PLOT.top - PLOT.bottom;
  return PLOT.top + innerH * (1 - (yMax ? Math.min(value, yMax) / yMax : 0));
}

function slotX(i, n) {
  const innerW = PLOT.width - PLOT.left - PLOT.right;
  return PLOT.left + (innerW * (i + 0.5)) / Math.max(n, 1);
}

function xLabels(svg, labels) {
  const n = labels.length;
  const every = Math.max(1, Math.ceil(n / 6));
  labels.forEach((label, i) => {
    if (i % every === 0 || i === n - 1) {
      svg.append(svgEl("text", { x: slotX(i, n), y: PLOT.height - 5, class: "axis", "text-anchor": "middle" },
        String(label).slice(0, 12)));
    }
  });
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

// Stacked bars: rows = [{label, title, parts: [[key, n], ...]}]; each part gets class `fill-<key>`.
function stackedBars(container, rows, yLabel, yMax) {
  const top = yMax ?? niceMax(Math.max(0, ...rows.map((r) => r.parts.reduce((s, [, n]) => s + n, 0))));
  const svg = frame(container, top, yLabel);
  const n = rows.length;
  const innerW = PLOT.width - PLOT.left - PLOT.right;
  const barW = Math.max(1, (innerW / Math.max(n, 1)) * 0.75);
  rows.forEach((row, i) => {
    let base = 0;
    for (const [key, value] of row.parts) {
      if (!(value > 0)) continue;
      const y1 = scaleY(base + value, top);
      const y0 = scaleY(base, top);
      svg.append(svgEl("rect", { x: slotX(i, n) - barW / 2, y: y1, width: barW, height: Math.max(0.5, y0 - y1),
        class: `bar fill-${token(key)}`, "data-key": key, "data-value": value },
      svgTitle(`${row.title ?? row.label}: ${value} ${key}`)));
      base += value;
    }
  });
  xLabels(svg, rows.map((r) => r.label));
  return svg;
}

// Lines: series = [{name, values: [number|null...]}], labels for the x axis; points carry tooltips.
function lineChart(container, labels, series, yLabel, yMax) {
  const all = series.flatMap((s) => s.values.filter((v) => typeof v === "number"));
  const top = yMax ?? niceMax(Math.max(0, ...all));
  const svg = frame(container, top, yLabel);
  const n = labels.length;
  for (const s of series) {
    const points = s.values.map((v, i) => (typeof v === "number" ? [slotX(i, n), scaleY(v, top), v, i] : null));
    let path = "";
    for (const p of points) {
      if (p === null) continue;
      path += `${path ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    }
    if (path) svg.append(svgEl("path", { d: path, class: `line stroke-${token(s.name)}` }));
    for (const p of points) {
      if (p === null) continue;
      svg.append(svgEl("circle", { cx: p[0], cy: p[1], r: 2.5, class: `dot fill-${token(s.name)}`,
        "data-series": s.name, "data-value": p[2] }, svgTitle(`${labels[p[3]]}: ${s.name} ${p[2]}`)));
    }
  }
  xLabels(svg, labels);
  return svg;
}

// A legend: [[key, text], ...] with colour swatches from the same classes as the plot.
function legend(container, entries) {
  container.replaceChildren(...entries.map(([key, text]) => {
    const item = document.createElement("span");
    item.className = "legend-item";
    const swatch = svgEl("svg", { width: 10, height: 10, class: "swatch" },
      svgEl("rect", { width: 10, height: 10, class: `fill-${token(key)}` }));
    item.append(swatch, document.createTextNode(` ${text}`));
    return item;
  }));
}
