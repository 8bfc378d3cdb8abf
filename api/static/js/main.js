// The review page: sign in, the queue, one case at a time, every action by keyboard too.
import {ApiError, call, setCsrfToken, whenSignedOut} from "./api.js";
import {renderCase, renderClaim, updateCard} from "./case_view.js";
import {file, openConfirmation, renderConfirmation} from "./confirm.js";
import {$, closeDialog, el, when} from "./dom.js";
import {FILE_ANNOTATION_KEYS, REPORT_ANNOTATION_KEYS, showHelp} from "./keys.js";
import {forgetMedia, hide, toggleReveal} from "./media.js";
import {CLASSES, currentItem, judgeable, review, startCase, toggle} from "./state.js";
import {mayReadTimeline, timelineSection} from "./timeline.js";
import {bindWellness, loadWellness, openWellness} from "./wellness.js";

let pendingPrefix = null, previewSeq = 0, openSeq = 0;
const showError = (message) => { $("error").textContent = message; };

async function loadQueue() {
  showError("");
  try {
    const cases = await call("/v1/cases?status=awaiting_review");
    // The open case stays marked across a reload of the queue, so `o` goes on from it.
    const open = (c) => review.current && review.current.case_ref === c.case_ref
      && review.current.case_number === c.case_number;
    $("queue").replaceChildren(...cases.map((c) => el("div", {
      class: "case" + (c.urgent ? " urgent" : "") + (open(c) ? " active" : ""),
      dataset: {caseRef: c.case_ref, caseNumber: String(c.case_number)}, onclick: (e) => openRow(e.currentTarget)},
      `${c.urgent ? "URGENT · " : ""}${c.escalated_at ? "OVERDUE · " : ""}${c.media_count} media · opened ${when(c.opened_at)}`)));
  } catch (e) { showError(e.message); }
}

function showSignIn(message) {
  setCsrfToken(null);
  review.session = null;
  review.current = null;
  review.wellness = null;
  forgetMedia();
  $("signin").hidden = false;
  $("signed-in").hidden = true;
  $("queue").replaceChildren();
  $("case").replaceChildren();
  showError(message || "");
}

async function showSignedIn(session) {
  review.session = session;
  setCsrfToken(session.csrf_token);
  $("password").value = "";
  // The shortcuts need NCMEC's words and `w` needs the reviewer's viewing settings: the signed-in controls appear
  // only once both are here, so a key pressed as soon as the page looks ready finds it ready (it used to show them
  // first, and a quick `w` met settings not loaded yet and opened nothing).
  try {
    review.vocabulary = await call("/v1/review/vocabulary");
    await loadWellness();
    await loadNames();
  } finally {
    $("signin").hidden = true;
    $("signed-in").hidden = false;
    $("who").textContent = `${session.username || "API key"} · ${session.role} · ${session.org_id}`;
  }
  await loadQueue();
  await openNamed();
}

// Reasons name people by account ("user:12"); the page shows their names. Without the list (refused or
// unreachable) the ids are shown as they are.
async function loadNames() {
  try {
    review.names = Object.fromEntries((await call("/v1/reviewers")).map((r) => [r.actor, r.username]));
  } catch (e) { review.names = {}; }
}

async function signIn(event) {
  event.preventDefault();
  try {
    await showSignedIn(await call("/v1/session", {method: "POST",
      body: JSON.stringify({username: $("username").value, password: $("password").value})}));
  } catch (e) { showError(e.message); }
}

// The case a link names: the queue page's "Open" and the dashboard link to /review#<case_ref>.
function namedRef() {
  try { return decodeURIComponent(location.hash.slice(1)); } catch (e) { return ""; }
}

const queueRows = () => [...document.querySelectorAll("#queue .case")];

async function openNamed() {
  const ref = namedRef();
  if (!ref || !review.session || (review.current && review.current.case_ref === ref)) return;
  const row = queueRows().find((r) => r.dataset.caseRef === ref);
  // Not in the queue (a case needing attention, from the dashboard): its oldest open case.
  await openCase(ref, row ? row.dataset.caseNumber : null, row || null);
}

function openRow(row) {
  // The address names the open case, so it can be shared or reloaded; replaceState fires no hashchange.
  history.replaceState(null, "", `#${encodeURIComponent(row.dataset.caseRef)}`);
  return openCase(row.dataset.caseRef, row.dataset.caseNumber, row);
}

// `o`: the case after the open one in the queue's order (urgent, then oldest), or the first when none is open.
function openNext() {
  const rows = queueRows();
  const at = rows.findIndex((r) => r.classList.contains("active"));
  const next = rows[at + 1];
  if (next) openRow(next);
  else showError(rows.length ? "This is the last case in the queue; Load queue for new ones." : "The queue is empty.");
}

async function openCase(ref, caseNumber, row) {
  const seq = ++openSeq;
  document.querySelectorAll(".case").forEach((r) => r.classList.remove("active"));
  if (row) row.classList.add("active");
  showError("");
  // The queue row names the case: a user's next case may be waiting while the previous one files.
  let view;
  try {
    view = await call(`/v1/cases/${encodeURIComponent(ref)}` + (caseNumber ? `?case_number=${caseNumber}` : ""));
  } catch (e) { if (seq === openSeq) showError(e.message); return; }
  if (seq !== openSeq) return;  // another case was opened meanwhile (o pressed again): that one is shown
  forgetMedia();
  startCase(view);
  renderCase(onChange);
  if (mayReadTimeline(review.session)) $("case").append(timelineSection(ref));
  $("urgency").value = review.shownSuggestion;
  $("urgency").oninput = () => { review.urgencyEdited = true; };
  $("info").onchange = refreshSuggestion;
  refreshSuggestion();
}

function choices() {
  return {
    incident_type: review.incidentType,
    media: Object.entries(review.decisions).map(([media_id, d]) => ({media_id, annotations: d.reported ? d.annotations : []})),
    report_annotations: review.reportAnnotations,
    additional_info: $("info").value.trim() || null,
  };
}

// The reasons the reviewer's own choices add (incident type, annotations, notes) belong in the suggestion.
async function refreshSuggestion() {
  const c = review.current;
  if (!c) return;
  const seq = ++previewSeq;
  try {
    const urgency = await call(`/v1/cases/${c.case_ref}/urgency-preview?case_number=${c.case_number}`,
                               {method: "POST", body: JSON.stringify(choices())});
    if (seq !== previewSeq || review.current !== c || review.urgencyEdited) return;
    review.shownSuggestion = urgency.suggested_reason || "";
    $("urgency").value = review.shownSuggestion;
  } catch (e) { showError(e.message); }
}

async function claim(release = false) {
  const c = review.current;
  try {
    const held = await call(`/v1/cases/${c.case_ref}/claim`, {method: release ? "DELETE" : "POST"});
    c.claim = release ? null : {claimed_by: held.claimed_by, claimed_by_name: held.claimed_by_name,
                                 claimed_at: held.claimed_at};
    renderClaim();
  } catch (e) {
    // Claiming arrives with its own endpoint; until then the page works without it.
    if (e instanceof ApiError && e.status === 404) showError("Claiming is not available on this server.");
    else showError(e.message);
  }
}

function moveCursor(to) {
  const before = review.cursor;
  review.cursor = Math.max(0, Math.min(to, review.current.media.length - 1));
  if (before !== review.cursor && review.wellness.reblur_on_leave) hide(before);
  updateCard(before);
  updateCard(review.cursor);
}

function setItem(change) {
  const item = currentItem();
  if (!item) return;
  if (!judgeable(item)) {
    showError(item.broken ? `${item.file_name || item.media_id} is broken (${item.broken}): it cannot be classified.`
                          : `${item.file_name || item.media_id} is not preserved and hashed yet: it cannot be classified.`);
    return;
  }
  showError("");
  Object.assign(review.decisions[item.media_id], change(review.decisions[item.media_id]));
  updateCard(review.cursor);
  refreshSuggestion();
}

// Supplemental Reported: the item goes with the report as context, unclassified; reporting it (1-4) or not
// reporting it (0) ends that.
function toggleSupplemental() {
  setItem((d) => (d.supplemental ? {supplemental: false}
                                 : {supplemental: true, reported: false, classification: null, annotations: []}));
}

function setIncident(index) {
  const type = review.vocabulary.incident_types[index];
  if (!type) return;
  review.incidentType = type;
  $("incident").value = type;
  refreshSuggestion();
}

function toggleReportAnnotation(name) {
  review.reportAnnotations = toggle(review.reportAnnotations, name);
  document.querySelectorAll("#report-annotations input").forEach((box) => {
    box.checked = review.reportAnnotations.includes(box.dataset.annotation);
  });
  refreshSuggestion();
}

function setAttached(threadId, on) {
  if (on) review.attach.add(threadId); else review.attach.delete(threadId);
  document.querySelectorAll("#conversations input.attach").forEach((box) => {
    box.checked = review.attach.has(box.dataset.threadId);
  });
}

function onChange(what, value, extra) {
  if (what === "cursor") moveCursor(value);
  else if (what === "incident") { review.incidentType = value || null; refreshSuggestion(); }
  else if (what === "report-annotation") toggleReportAnnotation(value);
  else if (what === "attach") setAttached(value, extra);
  else if (what === "supplemental") { moveCursor(value); toggleSupplemental(); }
  else if (what === "claim") claim();
  else if (what === "submit") openConfirmation();
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const dialog = document.querySelector("dialog[open]");
  if (dialog && event.key === "Escape") {
    // Closed here rather than by the browser, so focus leaves the dialog before the next key arrives.
    event.preventDefault();
    closeDialog(dialog);
    return;
  }
  if ($("confirm").open) {
    if (event.key === "t") { $("text-only").checked = !$("text-only").checked; renderConfirmation(); }
    else if (event.key === "Enter" && event.target.id !== "confirm-cancel") { event.preventDefault(); file(showError, loadQueue); }
    return;
  }
  if (dialog) return;
  // A key aimed at a control of a closed dialog (focus not yet fixed up by the browser) is meant for the page.
  const target = event.target.closest("dialog:not([open])") ? document.body : event.target;
  if (target.closest("textarea, input, select")) {
    // Keys typed into the text boxes are text; Esc hands the keyboard back to the shortcuts.
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "?") { showHelp(); return; }
  if (event.key === "w" && !pendingPrefix) { openWellness(); return; }
  if (event.key === "o" && !pendingPrefix && review.session) { event.preventDefault(); openNext(); return; }
  if (!review.current) return;
  const key = event.key;
  if (pendingPrefix) {
    const prefix = pendingPrefix;
    pendingPrefix = null;
    if (prefix === "a" && FILE_ANNOTATION_KEYS[key]) {
      setItem((d) => d.reported ? {annotations: toggle(d.annotations, FILE_ANNOTATION_KEYS[key])} : {});
    } else if (prefix === "r" && REPORT_ANNOTATION_KEYS[key]) toggleReportAnnotation(REPORT_ANNOTATION_KEYS[key]);
    else if (prefix === "i" && /^[1-8]$/.test(key)) setIncident(Number(key) - 1);
    return;
  }
  const actions = {
    j: () => moveCursor(review.cursor + 1), ArrowDown: () => moveCursor(review.cursor + 1),
    ArrowRight: () => moveCursor(review.cursor + 1),
    k: () => moveCursor(review.cursor - 1), ArrowUp: () => moveCursor(review.cursor - 1),
    ArrowLeft: () => moveCursor(review.cursor - 1),
    v: () => toggleReveal(review.cursor), " ": () => toggleReveal(review.cursor),
    0: () => setItem(() => ({reported: false, classification: null, annotations: [], supplemental: false})),
    n: () => setItem(() => ({reported: false, classification: null, annotations: [], supplemental: false})),
    s: () => toggleSupplemental(),
    h: () => { const all = review.attach.size < review.current.conversations.length;
               review.current.conversations.forEach((t) => setAttached(t.thread_id, all)); },
    u: () => $("urgency").focus(), c: () => claim(), C: () => claim(true),
    Enter: () => openConfirmation(),
  };
  for (const [index, name] of CLASSES.entries()) {
    actions[String(index + 1)] = () => setItem(() => ({reported: true, classification: name, supplemental: false}));
  }
  if (["a", "r", "i"].includes(key)) { pendingPrefix = key; event.preventDefault(); return; }
  const action = actions[key];
  if (!action) return;
  event.preventDefault();
  action();
}

document.addEventListener("keydown", onKey);
$("load").onclick = loadQueue;
$("signin").onsubmit = signIn;
$("signout").onclick = async () => {
  try { await call("/v1/session", {method: "DELETE"}); } catch (e) { /* ended already */ }
  showSignIn("Signed out.");
};
$("help-open").onclick = showHelp;
$("wellness-open").onclick = openWellness;
$("confirm-file").onclick = () => file(showError, loadQueue);
$("confirm-cancel").onclick = () => closeDialog($("confirm"));
// However a dialog closes (a button, a form's method=dialog), focus does not stay on its hidden controls.
document.querySelectorAll("dialog").forEach((d) => d.addEventListener("close", () => {
  if (d.contains(document.activeElement)) document.activeElement.blur();
}));
$("text-only").onchange = renderConfirmation;
bindWellness(showError);
window.addEventListener("hashchange", () => openNamed().catch((e) => showError(e.message)));
whenSignedOut(showSignIn);
// A session cookie from an earlier sign-in (or single sign-on) is used as it is.
call("/v1/session").then(showSignedIn, () => showSignIn(""));
