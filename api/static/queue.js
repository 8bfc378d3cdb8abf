// The queue with claims: who holds each case, since when, claim and release, and reassignment by a manager.
import {$, call, el, loadReviewers, nameOf, session, showError, startPage, when} from "./common.js";

const MANAGING = ["moderator_manager", "admin"];
const SORTS = [["urgency", "Urgency"], ["opened_at", "Opened (oldest first)"],
               ["claimed_at", "Claimed (oldest first)"], ["decided_at", "Decided (newest first)"]];
const STATUSES = [["", "Open"], ["awaiting_review", "Awaiting review"], ["needs_attention", "Needs attention"],
                  ["filing", "Filing"], ["filed", "Filed"], ["dismissed", "Dismissed"]];
let reviewers = [];

function render() {
  const options = (pairs) => pairs.map(([value, label]) => el("option", {value}, label));
  $("content").replaceChildren(
    el("h1", {}, "NCMEC queue"),
    el("div", {class: "filters"},
      el("label", {}, "Sort", el("select", {id: "sort", onchange: load}, options(SORTS))),
      el("label", {}, "Status", el("select", {id: "status", onchange: load}, options(STATUSES))),
      el("button", {id: "refresh", type: "button", onclick: load}, "Refresh")),
    el("table", {},
      el("thead", {}, el("tr", {}, ["Case", "Status", "Media", "Opened", "Held by", "First claimed", "Decided", ""]
        .map((h) => el("th", {}, h)))),
      el("tbody", {id: "cases"})));
}

async function act(promise, message) {
  showError(null);
  $("notice").textContent = "";
  try {
    await promise;
    $("notice").textContent = message;
  } catch (e) { showError(e); }
  await load();
}

function actions(entry) {
  const ref = entry.case_ref, mine = entry.claim && entry.claim.claimed_by === `user:${session.user_id}`;
  const manager = MANAGING.includes(session.role);
  const buttons = [];
  if (!entry.claim) {
    buttons.push(el("button", {type: "button", class: "claim",
      onclick: () => act(call(`/v1/cases/${ref}/claim`, {method: "POST"}), "Claimed.")}, "Claim"));
  }
  if (entry.claim && (mine || manager)) {
    buttons.push(el("button", {type: "button", class: "release",
      onclick: () => act(call(`/v1/cases/${ref}/claim`, {method: "DELETE"}), "Released.")}, "Release"));
  }
  if (manager && reviewers.length) {
    const select = el("select", {class: "reassign-to", "aria-label": "Reassign to"},
      reviewers.map((r) => el("option", {value: r.user_id}, `${r.username} (${r.role})`)));
    buttons.push(select, el("button", {type: "button", class: "reassign",
      onclick: () => act(call(`/v1/cases/${ref}/claim`, {method: "PUT",
        body: JSON.stringify({user_id: Number(select.value)})}), "Reassigned.")}, "Reassign"));
  }
  buttons.push(el("a", {href: `/review#${ref}`}, "Open"));
  return el("div", {class: "actions"}, buttons);
}

async function load() {
  try {
    const params = new URLSearchParams({sort: $("sort").value});
    if ($("status").value) params.set("status", $("status").value);
    const cases = await call(`/v1/cases?${params}`);
    $("cases").replaceChildren(...cases.map((c) => el("tr", {class: c.urgent ? "urgent" : null,
                                                              dataset: {caseRef: c.case_ref}},
      el("td", {}, `${c.urgent ? "URGENT " : ""}${c.escalated_at ? "OVERDUE " : ""}#${c.case_number}`),
      el("td", {}, el("span", {class: `badge ${c.status}`}, c.status.replace("_", " "))),
      el("td", {}, String(c.media_count)),
      el("td", {}, when(c.opened_at)),
      el("td", {class: "claim-cell"}, c.claim
        ? [el("span", {class: "holder"}, nameOf(c.claim.claimed_by)), ` since ${when(c.claim.claimed_at)}`]
        : "nobody"),
      el("td", {}, when(c.claimed_at)),
      el("td", {}, when(c.decided_at)),
      el("td", {}, actions(c)))));
  } catch (e) { showError(e); }
}

startPage(async () => {
  render();
  reviewers = await loadReviewers();
  await load();
});
