// pyti front page, "fleet at a glance": queue depth and age, jobs per hour, outcome mix,
// infrastructure failure rate over the last 24 h, slaves with their load. Polls
// GET /api/v1/fleet with the rest of the overview (app.js), so it updates live.
"use strict";

const OUTCOME_ORDER = ["passed", "failed", "crashed", "timed_out", "harmful", "incomplete",
  "infra_error", "cancelled"];

function hourLabel(ts) {
  return new Date(ts * 1000).toISOString().slice(11, 13) + "h";
}

function fmtAge(seconds) {
  if (typeof seconds !== "number") return "—";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function fmtRate(rate) {
  return typeof rate === "number" ? `${(rate * 100).toFixed(1)} %` : "—";
}

function outcomeParts(counts) {
  const known = OUTCOME_ORDER.filter((o) => counts[o]).map((o) => [o, counts[o]]);
  const other = Object.entries(counts).filter(([o]) => !OUTCOME_ORDER.includes(o));
  return [...known, ...other];
}

// One horizontal bar: the outcome mix of the whole window.
function mixBar(container, totals) {
  const parts = outcomeParts(totals.outcomes || {});
  const total = parts.reduce((s, [, n]) => s + n, 0);
  const svg = svgEl("svg", { viewBox: "0 0 320 18", class: "plot mix", role: "img", "aria-label": "outcome mix" });
  let x = 0;
  for (const [key, n] of parts) {
    const w = (320 * n) / total;
    svg.append(svgEl("rect", { x, y: 0, width: Math.max(w, 0.5), height: 18, class: `bar fill-${token(key)}`,
      "data-key": key, "data-value": n }, svgTitle(`${key}: ${n} (${((100 * n) / total).toFixed(1)} %)`)));
    x += w;
  }
  if (!total) svg.append(svgEl("text", { x: 160, y: 13, class: "axis", "text-anchor": "middle" }, "no job finished"));
  container.replaceChildren(svg);
  legend(document.getElementById("fleet-mix-legend"), parts.map(([key, n]) => [key, `${key} ${n}`]));
}

function slaveRow(s) {
  const load = typeof s.load === "number" ? s.load : 0;
  const bar = svgEl("svg", { viewBox: "0 0 100 10", class: "loadbar", role: "img", "aria-label": "load" },
    svgEl("rect", { width: 100, height: 10, class: "load-free" }),
    svgEl("rect", { width: 100 * Math.min(load, 1), height: 10, class: "load-busy" },
      svgTitle(`${s.busy} of ${s.slots} slots busy`)));
  return el("tr", { dataset: { slave: String(s.name) } },
    el("td", {}, s.name), el("td", {}, `${Number(s.busy)} / ${Number(s.slots)}`),
    el("td", {}, bar), el("td", {}, s.draining ? "draining" : ""));
}

function renderFleet(f) {
  const labels = f.hours.map((h) => hourLabel(h.start));
  setText("fleet-depth", String(f.queue.depth));
  setText("fleet-age", fmtAge(f.queue.oldest_age_s));
  setText("fleet-per-hour", String(f.totals.jobs_per_hour));
  setText("fleet-finished", String(f.totals.finished));
  setText("fleet-infra", fmtRate(f.totals.infra_error_rate));
  const cap = f.capacity || {};
  setText("fleet-capacity", cap.slots ? `${cap.busy} / ${cap.slots} slots busy` : "no slave connected");
  lineChart(document.getElementById("plot-queue"), labels,
    [{ name: "queued", values: f.hours.map((h) => h.queue_depth) }], "queue depth per hour");
  stackedBars(document.getElementById("plot-throughput"),
    f.hours.map((h, i) => ({ label: labels[i], title: `${labels[i]} (${h.finished} finished)`,
      parts: outcomeParts(h.outcomes || {}) })), "jobs finished per hour");
  lineChart(document.getElementById("plot-infra"), labels,
    [{ name: "infra_error", values: f.hours.map((h) => (typeof h.infra_error_rate === "number" ? Math.round(h.infra_error_rate * 1000) / 10 : null)) }],
    "infrastructure failures, % of attempts", 100);
  mixBar(document.getElementById("plot-mix"), f.totals);
  fillTable("fleet-slaves", (f.slaves || []).map(slaveRow));
}

async function refreshFleet() {
  try {
    renderFleet(await api("/fleet"));
  } catch (err) {
    showError(err);
  }
}
