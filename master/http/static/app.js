// pyti web page: the queue, recent jobs and slaves; one job with its phases,
// findings, quality, what changed since the previous release and live log
// (syscall trace lines hidden unless asked for). No build step, no dependencies.
//
// Everything shown comes from the API and much of it from the guest (log lines,
// findings, tracebacks): it is untrusted. Text is only ever set with
// textContent / createTextNode — never innerHTML — and the server's
// Content-Security-Policy forbids inline script as a second line of defence.
"use strict";

const API = "/api/v1";
const REFRESH_MS = 5000;
const MAX_LOG_LINES = 5000;
// Events kept in memory so that toggling "show trace lines" can redraw the log.
const MAX_KEPT_EVENTS = 20000;
// strace lines: thousands per job, hidden unless asked for (findings carry what matters).
const TRACE_EVENTS = new Set(["trace"]);
const FINAL_STATES = new Set(["finished", "cancelled"]);

// el("td", {className: "x"}, "text", otherNode): children strings become text nodes.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node[key] = value;
    }
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text ?? "";
}

function fmtTime(ts) {
  if (typeof ts !== "number") return "";
  return new Date(ts * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtDuration(seconds) {
  if (typeof seconds !== "number") return "";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${(seconds / 60).toFixed(1)} min`;
}

function jobLink(job) {
  // Ids are integers from the API; Number() makes sure nothing else gets into the href.
  const id = Number(job.id);
  return el("a", { href: `/jobs/${id}` }, `#${id}`);
}

function badge(text, kind) {
  const meaning = (VOCABULARY[`${kind}s`] || {})[text];
  return el("span", { className: `badge ${kind}-${String(text || "none").replace(/[^a-z_]/g, "")}`,
    title: typeof meaning === "string" ? meaning : "" }, text || "—");
}

// The words and their meanings come from the API (GET /api/v1/vocabulary, defined once
// in protocol/vocabulary.py); until it answers, badges simply have no tooltip.
let VOCABULARY = {};

async function loadVocabulary() {
  try {
    VOCABULARY = await api("/vocabulary");
  } catch (err) {
    showError(err);
  }
}

// The outcome, with the behaviour verdict beside it when that is not clean: a failed
// install that did something suspicious never reads as a plain "failed". A malicious
// verdict has already made the outcome "harmful".
function result(job) {
  const node = el("span", { className: "result" }, badge(job.outcome, "outcome"));
  if (job.outcome && job.verdict && job.verdict !== "clean" && job.outcome !== "harmful") {
    node.append(" · ", badge(job.verdict, "verdict"));
  }
  return node;
}

async function api(path) {
  const response = await fetch(API + path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${response.status} ${body.error || ""}: ${body.detail || ""}`);
  }
  return body;
}

function fillTable(id, rows) {
  const tbody = document.querySelector(`#${id} tbody`);
  tbody.replaceChildren(...rows);
}

function showError(err) {
  setText("status", `error: ${err.message}`);
}

// ---- overview ------------------------------------------------------------

async function refreshOverview() {
  try {
    const [queued, recent, slaves] = await Promise.all([
      api("/jobs?state=queued&limit=100"),
      api("/jobs?limit=50"),
      api("/slaves"),
    ]);
    setText("queue-count", `(${queued.jobs.length}${queued.next ? "+" : ""})`);
    fillTable("jobs-queue", queued.jobs.map((job) => el("tr", { dataset: { job: String(job.id) } },
      el("td", {}, jobLink(job)), el("td", {}, job.project), el("td", {}, job.version),
      el("td", {}, badge(job.state, "state")), el("td", {}, job.priority),
      el("td", {}, job.source), el("td", {}, fmtTime(job.created_at)))));
    fillTable("jobs-recent", recent.jobs.map((job) => el("tr", { dataset: { job: String(job.id) } },
      el("td", {}, jobLink(job)), el("td", {}, projectLink(job.project)), el("td", {}, job.version),
      el("td", {}, badge(job.state, "state")), el("td", {}, result(job)),
      el("td", {}, job.slave || ""), el("td", {}, fmtTime(job.finished_at)))));
    fillTable("slaves", slaves.slaves.map((s) => el("tr", {},
      el("td", {}, s.name), el("td", {}, s.address), el("td", {}, s.slots), el("td", {}, s.busy),
      el("td", {}, s.accel || ""), el("td", {}, (s.images || []).join(", ")),
      el("td", {}, fmtTime(s.last_heartbeat)))));
    setText("status", `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    showError(err);
  }
}

// ---- one job -------------------------------------------------------------

function kvRows(pairs) {
  return pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : v)));
}

function renderJob(job, attempts) {
  document.title = `pyti #${Number(job.id)} ${job.project} ${job.version}`;
  document.getElementById("job-title").replaceChildren(`#${Number(job.id)} `,
    projectLink(job.project), ` ${job.version}`);
  document.getElementById("job-state").replaceWith(Object.assign(badge(job.state, "state"), { id: "job-state" }));
  document.getElementById("job-outcome").replaceWith(Object.assign(result(job), { id: "job-outcome" }));
  const summary = job.summary && typeof job.summary === "object" ? job.summary : {};
  setText("job-reason", typeof summary.reason === "string" ? summary.reason : "");
  setText("job-error", job.error || "");
  const took = job.finished_at && job.started_at ? job.finished_at - job.started_at : null;
  fillTable("job-details", kvRows([
    ["image", job.image], ["isolation", job.isolation], ["attempt", job.attempt],
    ["slave", job.slave], ["source", job.source], ["priority", job.priority],
    ["created", fmtTime(job.created_at)], ["started", fmtTime(job.started_at)],
    ["finished", fmtTime(job.finished_at)], ["duration", fmtDuration(took)],
    ["files", (job.files || []).map((f) => f.filename).join(", ")],
    ["quarantined", job.quarantined ? "yes" : ""],
  ]));
  const phases = job.phases && typeof job.phases === "object" ? Object.entries(job.phases) : [];
  fillTable("phases", phases.map(([name, p]) => {
    const info = p && typeof p === "object" ? p : { status: p };
    const detail = [info.signal_name && `signal ${info.signal_name}`,
      info.exit_code !== undefined && info.exit_code !== null && `exit ${info.exit_code}`,
      info.output_dropped ? `output capped (${info.output_dropped} bytes dropped)` : ""]
      .filter(Boolean).join(", ");
    const row = el("tr", {}, el("td", {}, name), el("td", {}, badge(info.status, "status")),
      el("td", {}, fmtDuration(info.duration_s)), el("td", {}, detail));
    if (info.traceback) {
      row.lastChild.append(el("pre", { className: "traceback" }, info.traceback));
    }
    return row;
  }));
  fillTable("findings", (job.findings || []).map((f) => el("tr", { className: `severity-${String(f.severity).replace(/[^a-z]/g, "")}` },
    el("td", {}, f.rule), el("td", {}, f.severity), el("td", {}, f.phase),
    el("td", {}, f.process || ""), el("td", {}, el("code", {}, f.evidence ?? "")))));
  const quality = job.summary && typeof job.summary.quality === "object" && job.summary.quality ? job.summary.quality : {};
  const groups = quality.groups && typeof quality.groups === "object" ? Object.entries(quality.groups) : [];
  fillTable("quality", kvRows([["score", quality.score], ...groups.map(([g, v]) => [`${g}`, v]),
    ["error", job.summary && job.summary.quality_error]]));
  const indicators = Array.isArray(quality.indicators) ? quality.indicators : [];
  fillTable("quality-indicators", indicators.map((i) => el("tr", { className: `level-${String(i.level).replace(/[^a-z]/g, "")}` },
    el("td", {}, i.id), el("td", {}, i.group), el("td", {}, i.level),
    el("td", {}, typeof i.value === "object" ? JSON.stringify(i.value) : i.value), el("td", {}, i.reason))));
  renderComparison(job);
  if (location.hash === "#since-previous" && !scrolledToDiff) {
    scrolledToDiff = true; // the section exists only now: the browser could not scroll to it
    document.getElementById("since-previous").scrollIntoView();
  }
  fillTable("attempts", (attempts || []).map((a) => el("tr", {},
    el("td", {}, a.attempt), el("td", {}, a.slave), el("td", {}, a.status), el("td", {}, a.outcome || ""),
    el("td", {}, a.reason || ""), el("td", {}, fmtTime(a.assigned_at)))));
}

let scrolledToDiff = false;

function cssToken(text) {
  return String(text || "").replace(/[^a-z]/g, "");
}

function previousLink(previous) {
  // Ids are integers from the API; Number() makes sure nothing else gets into the href.
  const id = Number(previous.job_id);
  return el("a", { href: `/jobs/${id}` }, `${previous.version} (#${id})`);
}

function renderComparison(job) {
  const diff = job.behaviour_diff && typeof job.behaviour_diff === "object" ? job.behaviour_diff : null;
  const trend = job.quality_trend && typeof job.quality_trend === "object" ? job.quality_trend : null;
  const summary = document.getElementById("compare-summary");
  const previous = (diff && diff.previous) || (trend && trend.previous) || null;
  if (!diff && !trend) {
    summary.replaceChildren(FINAL_STATES.has(job.state) ? "not compared" : "when the job has finished");
  } else if (!previous || typeof previous !== "object") {
    summary.replaceChildren("no earlier release of this project tested");
  } else {
    const parts = ["compared with ", previousLink(previous)];
    if (trend && typeof trend.score_change === "number") {
      const sign = trend.score_change > 0 ? "+" : "";
      parts.push(`: quality ${trend.previous.score} → ${trend.score} (${sign}${trend.score_change})`);
    }
    const changes = diff ? (diff.new || []).length + (diff.gone || []).length : 0;
    parts.push(changes ? `; ${changes} behaviour change(s)` : "; same behaviour");
    summary.replaceChildren(...parts); // strings become text nodes
  }
  const entries = diff ? [...(Array.isArray(diff.new) ? diff.new : []), ...(Array.isArray(diff.gone) ? diff.gone : [])] : [];
  fillTable("behaviour-diff", entries.filter((e) => e && typeof e === "object").map((e) =>
    el("tr", { className: `change-${cssToken(e.change)}` },
      el("td", {}, e.change), el("td", {}, e.phase), el("td", {}, e.kind), el("td", {}, e.text))));
  const changes = trend && Array.isArray(trend.changes) ? trend.changes : [];
  fillTable("quality-trend", changes.filter((c) => c && typeof c === "object").map((c) =>
    el("tr", { className: `change-${cssToken(c.change)}` },
      el("td", {}, c.indicator), el("td", {}, c.change), el("td", {}, c.text))));
}

async function refreshJob(id) {
  try {
    const body = await api(`/jobs/${id}`);
    renderJob(body.job, body.attempts);
    return body.job;
  } catch (err) {
    showError(err);
    return null;
  }
}

const logEvents = [];
let traceCount = 0;

function isTrace(ev) {
  return TRACE_EVENTS.has(ev.event);
}

function showTraces() {
  return document.getElementById("show-trace").checked;
}

function updateTraceCount() {
  setText("trace-hidden", !showTraces() && traceCount ? `(${traceCount} trace lines hidden)` : "");
}

function appendLog(ev) {
  logEvents.push(ev);
  if (logEvents.length > MAX_KEPT_EVENTS + 1000) logEvents.splice(0, 1000);
  if (isTrace(ev)) {
    traceCount += 1;
    if (!showTraces()) {
      updateTraceCount();
      return;
    }
  }
  const log = document.getElementById("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(logLine(ev));
  while (log.childElementCount > MAX_LOG_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function redrawLog() {
  const show = showTraces();
  const shown = logEvents.filter((ev) => show || !isTrace(ev)).slice(-MAX_LOG_LINES);
  const log = document.getElementById("log");
  log.replaceChildren(...shown.map(logLine));
  log.scrollTop = log.scrollHeight;
  updateTraceCount();
}

function logLine(ev) {
  const level = String(ev.level || "info").replace(/[^a-z]/g, "");
  const { line: text, ...rest } = ev.fields && typeof ev.fields === "object" ? ev.fields : {};
  const fields = (typeof text === "string" ? " | " + text : "") +
    (Object.keys(rest).length ? " " + JSON.stringify(rest) : "");
  const line = el("div", { className: `ev level-${level}`, dataset: { seq: String(Number(ev.seq)) } },
    el("span", { className: "seq" }, ev.seq), " ",
    el("span", { className: "ts" }, fmtTime(ev.ts)), " ",
    el("span", { className: "lvl" }, level), " ",
    el("span", { className: "phase" }, ev.phase || "-"), " ",
    el("span", { className: "name" }, ev.event), el("span", { className: "fields" }, fields));
  return line;
}

function followLog(id) {
  // EventSource reconnects by itself and sends Last-Event-ID: the server resumes after it.
  const source = new EventSource(`${API}/jobs/${id}/events/stream`);
  setText("log-state", "(live)");
  source.addEventListener("log", (message) => {
    try {
      appendLog(JSON.parse(message.data));
    } catch (err) {
      showError(err);
    }
  });
  source.addEventListener("end", (message) => {
    source.close();
    let outcome = "";
    try { outcome = JSON.parse(message.data).outcome || ""; } catch (err) { showError(err); }
    setText("log-state", `(ended${outcome ? ": " + outcome : ""})`);
    refreshJob(id);
  });
  // The master is shutting down: the stream ends and EventSource comes back once it is up.
  source.addEventListener("closing", () => setText("log-state", "(master restarting)"));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setText("log-state", "(disconnected)");
    else setText("log-state", "(reconnecting)");
  });
}

async function showJob(id) {
  document.getElementById("job").hidden = false;
  document.getElementById("show-trace").addEventListener("change", redrawLog);
  const job = await refreshJob(id);
  if (job === null) return;
  followLog(id);
}

function route() {
  const match = /^\/jobs\/(\d{1,19})$/.exec(location.pathname) || /^#\/jobs\/(\d{1,19})$/.exec(location.hash);
  const project = /^\/projects\/([A-Za-z0-9._-]{1,200})$/.exec(location.pathname);
  if (match) {
    showJob(match[1]);
  } else if (project) {
    showProject(project[1]);
  } else if (location.pathname === "/jobs") {
    showJobList();
  } else {
    document.getElementById("overview").hidden = false;
    const refresh = () => Promise.all([refreshOverview(), refreshFleet()]);
    refresh();
    setInterval(refresh, REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => { loadVocabulary().then(route); });
