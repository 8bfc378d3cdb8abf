// The case's timeline, for auditors and Moderator Managers: every event of the user's cases, in order, from
// Temporal's histories and the database's records (GET /v1/cases/{ref}/timeline). Read on demand: it is long.
import {call} from "./api.js";
import {$, el, when} from "./dom.js";

const TIMELINE_ROLES = new Set(["auditor", "moderator_manager"]);

export function mayReadTimeline(session) {
  return Boolean(session) && TIMELINE_ROLES.has(session.role);
}

export function timelineSection(ref) {
  const list = el("ol", {id: "timeline-entries", class: "timeline"});
  const button = el("button", {type: "button", id: "timeline-button", onclick: () => loadTimeline(ref)}, "Show timeline");
  return el("section", {id: "timeline"}, el("h2", {}, "Timeline"), button, el("p", {id: "timeline-runs", class: "muted"}), list);
}

async function loadTimeline(ref) {
  $("timeline-button").disabled = true;
  try {
    const timeline = await call(`/v1/cases/${ref}/timeline`);
    const exported = timeline.runs.filter((r) => r.from_export).length;
    $("timeline-runs").textContent = `${timeline.runs.length} runs (${exported} read from exports)` +
      (timeline.missing_runs.length ? ` · missing: ${timeline.missing_runs.join(", ")}` : "");
    $("timeline-entries").replaceChildren(...timeline.entries.map((e) => el("li", {dataset: {kind: e.kind}},
      el("time", {}, when(e.at)), " ", el("b", {}, e.kind),
      e.case_number ? ` · case ${e.case_number}` : "", e.actor ? ` · ${e.actor}` : "", ` · ${e.summary}`)));
  } catch (e) {
    $("timeline-runs").textContent = `The timeline could not be read: ${e.message}`;
  } finally {
    $("timeline-button").disabled = false;
  }
}
