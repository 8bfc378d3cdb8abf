"use strict";
const CLASSES = ["A1", "A2", "B1", "B2"];
const ANNOTATION_KEYS = {i: "infant", l: "liveStreaming", g: "generativeAi", s: "possibleSelfProduction",
                         m: "potentialMeme", p: "physicalHarm"};
const INCIDENTS = [
  "Child Pornography (possession, manufacture, and distribution)", "Child Sex Trafficking", "Child Sex Tourism",
  "Child Sexual Molestation", "Misleading Domain Name", "Misleading Words or Digital Images on the Internet",
  "Online Enticement of Children for Sexual Acts", "Unsolicited Obscene Material Sent to a Child"];
let current = null, decisions = {}, cursor = 0, pendingAnnotation = false;
// The suggestion the reviewer was last shown in the urgency box, sent with the decision so that sending it
// unchanged is recorded as confirmed; once they type in the box it is theirs and never overwritten.
let shownSuggestion = "", urgencyEdited = false, previewSeq = 0;
const $ = (id) => document.getElementById(id);
// The session is an HttpOnly cookie the script never sees; the CSRF token goes with every request that changes
// something, and proves the request comes from this page.
let csrfToken = null;

async function call(path, options = {}) {
  const headers = {"Content-Type": "application/json"};
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  if (response.status === 401 && !path.startsWith("/v1/session")) showSignIn("Your session has ended; sign in again.");
  if (response.status === 204) return null;
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(`${problem.title || response.status}\n${(problem.errors || []).map(e => e.field + ": " + e.message).join("\n")}`);
  }
  return response.json();
}

async function loadQueue() {
  $("error").textContent = "";
  try {
    const cases = await call("/v1/cases?status=awaiting_review");
    $("queue").replaceChildren(...cases.map((c) => {
      const row = document.createElement("div");
      row.className = "case" + (c.urgent ? " urgent" : "");
      row.dataset.caseRef = c.case_ref;
      row.textContent = `${c.urgent ? "URGENT · " : ""}${c.escalated_at ? "OVERDUE · " : ""}${c.media_count} media · ` +
        `opened ${new Date(c.opened_at).toLocaleString()}`;
      row.onclick = () => openCase(c.case_ref, c.case_number, row);
      return row;
    }));
  } catch (e) { $("error").textContent = e.message; }
}

function showSignIn(message) {
  csrfToken = null;
  current = null;
  $("signin").hidden = false;
  $("signed-in").hidden = true;
  $("queue").replaceChildren();
  $("case").replaceChildren();
  $("controls").hidden = true;
  $("error").textContent = message || "";
}

function showSignedIn(session) {
  csrfToken = session.csrf_token;
  $("signin").hidden = true;
  $("signed-in").hidden = false;
  $("who").textContent = `${session.role} · ${session.org_id}`;
  $("password").value = "";
  loadQueue();
}

async function signIn(event) {
  event.preventDefault();
  try {
    showSignedIn(await call("/v1/session", {method: "POST",
      body: JSON.stringify({username: $("username").value, password: $("password").value})}));
  } catch (e) { $("error").textContent = e.message; }
}

async function signOut() {
  try { await call("/v1/session", {method: "DELETE"}); } catch (e) { /* ended already */ }
  showSignIn("Signed out.");
}

async function resume() {
  // A session cookie from an earlier sign-in (or single sign-on) is used as it is.
  try { showSignedIn(await call("/v1/session")); } catch (e) { showSignIn(""); }
}

async function mediaUrl(item) {
  const response = await fetch(item.content_url, {credentials: "same-origin"});
  return URL.createObjectURL(await response.blob());
}

async function openCase(ref, caseNumber, row) {
  document.querySelectorAll(".case").forEach((r) => r.classList.remove("active"));
  row.classList.add("active");
  // The queue row names the case: a user's next case may be waiting while the previous one files.
  current = await call(`/v1/cases/${ref}?case_number=${caseNumber}`);
  decisions = Object.fromEntries(current.media.map((m) => [m.media_id, {classification: null, reported: false, annotations: []}]));
  cursor = 0;
  $("controls").hidden = false;
  $("incident").replaceChildren(...INCIDENTS.map((text) => Object.assign(document.createElement("option"), {text})));
  // The suggestion is pre-filled: send it as is to confirm, edit it, or empty it to clear it.
  shownSuggestion = (current.urgency && current.urgency.suggested_reason) || "";
  urgencyEdited = false;
  $("urgency").value = shownSuggestion;
  $("info").value = "";
  await render();
  refreshSuggestion();
}

function choices() {
  return {
    incident_type: $("incident").value,
    media: Object.entries(decisions).map(([media_id, d]) => ({media_id, annotations: d.reported ? d.annotations : []})),
    additional_info: $("info").value.trim() || null,
  };
}

// The reasons the reviewer's own choices add (incident type, annotations, notes) belong in the suggestion.
async function refreshSuggestion() {
  if (!current) return;
  const seq = ++previewSeq, ref = current.case_ref, number = current.case_number;
  try {
    const urgency = await call(`/v1/cases/${ref}/urgency-preview?case_number=${number}`, {method: "POST", body: JSON.stringify(choices())});
    if (seq !== previewSeq || !current || current.case_ref !== ref || urgencyEdited) return;
    shownSuggestion = urgency.suggested_reason || "";
    $("urgency").value = shownSuggestion;
  } catch (e) { $("error").textContent = e.message; }
}

async function render() {
  const cards = await Promise.all(current.media.map(async (m, index) => {
    const d = decisions[m.media_id];
    const card = document.createElement("div");
    card.className = "media" + (index === cursor ? " current" : "");
    const img = document.createElement("img");
    if (m.evidence) img.src = await mediaUrl(m);
    img.alt = "media " + (index + 1);
    const label = document.createElement("div");
    label.innerHTML = `<b>${d.reported ? d.classification || "reported" : "not reported"}</b><br>` +
      Object.values(ANNOTATION_KEYS).map((a) => `<span class="tag ${d.annotations.includes(a) ? "on" : ""}">${a}</span>`).join("");
    card.append(img, label);
    card.onclick = () => { cursor = index; render(); };
    return card;
  }));
  const submit = document.createElement("button");
  submit.textContent = "Submit CyberTip";
  submit.onclick = submitDecision;
  $("case").replaceChildren(...cards, document.createElement("br"), submit);
}

async function submitDecision() {
  $("error").textContent = "";
  const body = {
    case_number: current.case_number,  // a decision is refused (409) if the case moved on meanwhile
    incident_type: $("incident").value,
    media: Object.entries(decisions).map(([media_id, d]) => ({media_id, ...d, annotations: d.reported ? d.annotations : []})),
    escalate_to_high_priority: $("urgency").value.trim() || null,
    urgency_suggestion_shown: shownSuggestion,
    additional_info: $("info").value.trim() || null,
  };
  try {
    await call(`/v1/cases/${current.case_ref}/decision`, {method: "POST", body: JSON.stringify(body)});
    $("case").textContent = "Submitted: the CyberTip is being filed.";
    $("controls").hidden = true;
    current = null;
    loadQueue();
  } catch (e) { $("error").textContent = e.message; }
}

document.addEventListener("keydown", (event) => {
  // Keys typed into the sign-in form, the incident list or the text boxes are text, not review shortcuts.
  if (!current || event.target.closest("input, textarea, select")) return;
  const media = current.media[cursor];
  const d = decisions[media.media_id];
  if (pendingAnnotation) {
    pendingAnnotation = false;
    const annotation = ANNOTATION_KEYS[event.key];
    if (annotation) d.annotations = d.annotations.includes(annotation) ? d.annotations.filter((a) => a !== annotation) : [...d.annotations, annotation];
  } else if (event.key === "j") cursor = Math.min(cursor + 1, current.media.length - 1);
  else if (event.key === "k") cursor = Math.max(cursor - 1, 0);
  else if ("1234".includes(event.key)) Object.assign(d, {reported: true, classification: CLASSES[Number(event.key) - 1]});
  else if (event.key === "0") Object.assign(d, {reported: false, classification: null, annotations: []});
  else if (event.key === "a") { pendingAnnotation = true; return; }
  else if (event.key === "v") { document.querySelectorAll(".media")[cursor].classList.toggle("revealed"); return; }
  else if (event.key === "Enter") { submitDecision(); return; }
  else return;
  render();
  if (!"jk".includes(event.key)) refreshSuggestion();
});
$("load").onclick = loadQueue;
$("signin").onsubmit = signIn;
$("signout").onclick = signOut;
resume();
$("urgency").oninput = () => { urgencyEdited = true; };
$("incident").onchange = refreshSuggestion;
$("info").onchange = refreshSuggestion;
