// pyti jobs list (/jobs): the API's filters as a form, the matching jobs newest first,
// and "older" links (keyset paging with `before`). The page's query string is the API's
// query (same names, same meaning), so a page URL, an API URL and `pyti jobs` flags match.
"use strict";

const JOB_FILTERS = ["project", "q", "state", "outcome", "verdict", "source", "slave", "since", "until"];
const LIST_LIMIT = 50;
const RANGES = { "": "any time", "3600": "last hour", "86400": "last 24 h", "604800": "last 7 days",
  "2592000": "last 30 days" };

function fillChoices(select, words) {
  select.replaceChildren(el("option", { value: "" }, "any"), ...words.map((w) => el("option", { value: w }, w)));
}

function filterParams() {
  const params = new URLSearchParams();
  const given = new URLSearchParams(location.search);
  for (const name of [...JOB_FILTERS, "before"]) {
    const value = given.get(name);
    if (value) params.set(name, value);
  }
  return params;
}

function projectLink(name) {
  return el("a", { href: `/projects/${encodeURIComponent(String(name))}` }, name);
}

async function loadJobList() {
  const params = filterParams();
  const form = document.getElementById("filters");
  for (const name of JOB_FILTERS) form.elements[name].value = params.get(name) || "";
  form.elements.range.value = "";
  const query = new URLSearchParams(params);
  query.set("limit", String(LIST_LIMIT));
  try {
    const body = await api(`/jobs?${query}`);
    fillTable("jobs-list", body.jobs.map((job) => el("tr", { dataset: { job: String(job.id) } },
      el("td", {}, jobLink(job)), el("td", {}, projectLink(job.project)), el("td", {}, job.version),
      el("td", {}, badge(job.state, "state")), el("td", {}, result(job)), el("td", {}, job.source),
      el("td", {}, job.slave || ""), el("td", {}, fmtTime(job.created_at)))));
    setText("jobs-count", `(${body.jobs.length}${body.next ? "+" : ""})`);
    const more = document.getElementById("jobs-more");
    more.hidden = !body.next;
    if (body.next) {
      const older = new URLSearchParams(params);
      older.set("before", String(Number(body.jobs[body.jobs.length - 1].id)));
      more.href = `/jobs?${older}`;
    }
    setText("status", `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    showError(err);
  }
}

function applyFilters(event) {
  event.preventDefault(); // the CSP allows no form action: the script builds the URL
  const form = document.getElementById("filters");
  const params = new URLSearchParams();
  for (const name of JOB_FILTERS) {
    const value = String(form.elements[name].value || "").trim();
    if (value) params.set(name, value);
  }
  const range = form.elements.range.value;
  if (range) params.set("since", String(Math.floor(Date.now() / 1000) - Number(range)));
  history.pushState(null, "", `/jobs${params.toString() ? "?" + params : ""}`);
  loadJobList();
}

function showJobList() {
  document.getElementById("joblist").hidden = false;
  document.title = "pyti jobs";
  const form = document.getElementById("filters");
  fillChoices(form.elements.state, ["queued", "assigned", "running", "finished", "cancelled"]);
  fillChoices(form.elements.outcome, Object.keys(VOCABULARY.outcomes || {}));
  fillChoices(form.elements.verdict, Object.keys(VOCABULARY.verdicts || {}));
  fillChoices(form.elements.source, ["feed", "api", "upload"]);
  form.elements.range.replaceChildren(...Object.entries(RANGES).map(([v, t]) => el("option", { value: v }, t)));
  form.addEventListener("submit", applyFilters);
  window.addEventListener("popstate", loadJobList);
  loadJobList();
}
