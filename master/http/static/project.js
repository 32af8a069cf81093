// pyti project page (/projects/NAME): every tested release newest first with its numbers,
// plots across releases (quality score, tests passed/failed, job duration), the worst
// release marked, links to each release's behaviour diff against the previous one.
"use strict";

function testsText(t) {
  if (!t) return "";
  const parts = [];
  for (const key of ["passed", "failed", "errors", "skipped"]) {
    if (typeof t[key] === "number") parts.push(`${t[key]} ${key}`);
  }
  return parts.join(", ");
}

function phaseTimes(phases) {
  return ["install", "import", "tests"].filter((p) => phases && phases[p] && typeof phases[p].duration_s === "number")
    .map((p) => `${p} ${fmtDuration(phases[p].duration_s)}`).join(", ");
}

function findingsCell(r) {
  const rules = Object.entries(r.rules || {});
  if (!rules.length) return el("td", {}, "0");
  rules.sort((a, b) => b[1].count - a[1].count);
  const shown = rules.slice(0, 3).map(([rule, info]) => `${rule} ×${Number(info.count)}`).join(", ");
  return el("td", { className: "findings" }, `${Number(r.findings)}: ${shown}${rules.length > 3 ? ", …" : ""}`);
}

function diffCell(r) {
  if (!r.previous) return el("td", {}, r.behaviour_changes === null ? "" : "first tested");
  const n = r.behaviour_changes;
  const change = typeof r.score_change === "number" ? `, quality ${r.score_change > 0 ? "+" : ""}${r.score_change}` : "";
  const link = el("a", { href: `/jobs/${Number(r.job_id)}#since-previous`, className: "diff-link" },
    `vs ${r.previous.version}: ${n ? `${n} behaviour change(s)` : "same behaviour"}${change}`);
  return el("td", {}, link);
}

function scoreText(r) {
  if (typeof r.score !== "number") return "";
  return String(r.score);
}

function releaseRow(r, worst) {
  const row = el("tr", { dataset: { job: String(Number(r.job_id)), version: String(r.version) },
    className: r.job_id === worst ? "worst" : "" },
  el("td", {}, el("a", { href: `/jobs/${Number(r.job_id)}` }, r.version)),
  el("td", {}, result(r)), el("td", { className: "tests" }, testsText(r.tests)),
  el("td", { className: "score" }, scoreText(r)), el("td", {}, fmtDuration(r.duration_s)),
  el("td", { className: "phase-times" }, phaseTimes(r.phases)), findingsCell(r), diffCell(r),
  el("td", {}, fmtTime(r.finished_at)));
  if (r.reason) row.children[1].append(el("div", { className: "reason" }, r.reason));
  return row;
}

function renderProject(h) {
  document.title = `pyti ${h.name}`;
  setText("project-title", h.name);
  const img = document.getElementById("project-badge");
  img.src = `/badge/${encodeURIComponent(h.project)}.svg`;
  img.alt = `pyti badge of ${h.project}`;
  document.getElementById("project-jobs").href = `/jobs?project=${encodeURIComponent(h.project)}`;
  const releases = h.releases;
  const newest = releases[0];
  const worst = releases.find((r) => r.job_id === h.worst);
  const summary = document.getElementById("project-summary");
  const parts = [`${releases.length} tested release run(s)${h.truncated ? " (the newest shown)" : ""}; newest `,
    el("a", { href: `/jobs/${Number(newest.job_id)}` }, newest.version), `: ${newest.outcome}`];
  if (worst) {
    parts.push("; worst ", el("a", { href: `/jobs/${Number(worst.job_id)}`, id: "worst-link" }, worst.version),
      `: ${worst.outcome}${typeof worst.score === "number" ? `, quality ${worst.score}` : ""}`);
  }
  summary.replaceChildren(...parts);
  const chrono = [...releases].reverse();
  const labels = chrono.map((r) => r.version);
  lineChart(document.getElementById("plot-quality"), labels,
    [{ name: "score", values: chrono.map((r) => r.score) }], "quality score by release", 100);
  stackedBars(document.getElementById("plot-tests"), chrono.map((r) => ({ label: r.version,
    parts: [["passed", (r.tests && r.tests.passed) || 0],
      ["failed", ((r.tests && r.tests.failed) || 0) + ((r.tests && r.tests.errors) || 0)]] })),
  "tests passed and failed by release");
  lineChart(document.getElementById("plot-duration"), labels,
    [{ name: "duration", values: chrono.map((r) => (typeof r.duration_s === "number" ? Math.round(r.duration_s * 10) / 10 : null)) }],
    "job duration (s) by release");
  fillTable("releases", releases.map((r) => releaseRow(r, h.worst)));
}

async function showProject(name) {
  document.getElementById("project").hidden = false;
  try {
    renderProject(await api(`/projects/${encodeURIComponent(name)}`));
    setText("status", `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setText("project-title", name);
    showError(err);
  }
}
