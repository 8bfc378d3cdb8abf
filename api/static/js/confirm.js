// Submitting: a confirmation that lists exactly what will be filed (and refuses what cannot be), then the filing
// itself, followed until NCMEC gave a report id or the filing failed.
import {call} from "./api.js";
import {personFrom} from "./case_view.js";
import {$, closeDialog, el} from "./dom.js";
import {judgeable, review} from "./state.js";

const POLL_MS = 1000;

export function decisionBody() {
  const c = review.current;
  const victim = personFrom("victim"), recipient = personFrom("recipient");
  return {
    case_number: c.case_number,  // a decision is refused (409) if the case moved on meanwhile
    incident_type: review.incidentType,
    // Items still being preserved or hashed, or broken, are left out: they go on to the user's next case.
    media: c.media.filter(judgeable).map((m) => {
      const d = review.decisions[m.media_id];
      return {media_id: m.media_id, reported: d.reported, classification: d.reported ? d.classification : null,
              annotations: d.reported ? d.annotations : [], supplemental: !d.reported && d.supplemental};
    }),
    report_annotations: review.reportAnnotations,
    escalate_to_high_priority: $("urgency").value.trim() || null,
    urgency_suggestion_shown: review.shownSuggestion,
    additional_info: $("info").value.trim() || null,
    victims: victim ? [victim] : [],
    intended_recipients: recipient ? [recipient] : [],
    attach_conversations: [...review.attach],
    text_only: $("text-only").checked,
  };
}

// Why the decision cannot be filed as it stands; the API refuses the same (and says so if this page is wrong).
function refusals(body) {
  const c = review.current;
  const problems = [];
  if (!body.incident_type) problems.push("Choose an incident type (i then 1-8).");
  const reported = body.media.filter((m) => m.reported);
  if (!reported.length && !body.attach_conversations.length && !body.text_only) {
    problems.push("Nothing is reported and no conversation is attached: report an item, attach a conversation, " +
                  "or choose a text-only report (t).");
  }
  for (const m of reported) {
    const item = c.media.find((i) => i.media_id === m.media_id);
    const hashMatched = item.analysis && item.analysis.matches.length > 0;
    // You answer for what you report: your own reveal counts, not a colleague's (the API refuses the same).
    if (!item.viewed_by_you && !viewedHere(item) && !(hashMatched && c.files_unviewed_hash_matches)) {
      problems.push(`Reveal ${item.file_name || item.media_id} before reporting it: you have not viewed it.`);
    }
  }
  return problems;
}

function viewedHere(item) {
  const node = document.querySelector(`#media .media[data-media-id="${CSS.escape(item.media_id)}"]`);
  return Boolean(node && node.querySelector(".frame img, .frame video"));
}

export function openConfirmation() {
  $("text-only").checked = false;
  renderConfirmation();
  $("confirm").showModal();
}

export function renderConfirmation() {
  const body = decisionBody();
  const c = review.current;
  const reported = body.media.filter((m) => m.reported);
  const supplemental = body.media.filter((m) => m.supplemental);
  const left = c.media.filter((m) => !judgeable(m));
  const name = (id) => { const m = c.media.find((i) => i.media_id === id); return m.file_name || m.media_id; };
  $("confirm-body").replaceChildren(el("dl", {},
    el("dt", {}, "Incident type"), el("dd", {id: "confirm-incident"}, body.incident_type || "none chosen"),
    el("dt", {}, `Reported files (${reported.length})`), el("dd", {}, reported.length ? el("ul", {id: "confirm-files"},
      reported.map((m) => el("li", {}, `${name(m.media_id)}: ${m.classification || "no classification"}`,
        m.annotations.length ? ` · ${m.annotations.join(", ")}` : "",
        viewedHere(c.media.find((i) => i.media_id === m.media_id)) || c.media.find((i) => i.media_id === m.media_id).viewed
          ? " · viewed" : " · not viewed (fileViewedByEsp false)"))) : "none"),
    el("dt", {}, `Supplemental files (${supplemental.length})`), el("dd", {}, supplemental.length
      ? el("ul", {id: "confirm-supplemental"}, supplemental.map((m) => el("li", {}, name(m.media_id)))) : "none"),
    el("dt", {}, "Not reported"), el("dd", {}, String(body.media.length - reported.length - supplemental.length)),
    left.length ? [el("dt", {}, "Left for the next case"), el("dd", {}, left.map((m) => name(m.media_id)).join(", "))] : null,
    el("dt", {}, "Report annotations"), el("dd", {}, body.report_annotations.join(", ") || "none"),
    el("dt", {}, "Conversations attached"), el("dd", {}, body.attach_conversations.join(", ") || "none"),
    el("dt", {}, "Victim"), el("dd", {}, body.victims.length ? "given" : "none"),
    el("dt", {}, "Intended recipient"), el("dd", {}, body.intended_recipients.length ? "given" : "none"),
    el("dt", {}, "Urgent"), el("dd", {}, body.escalate_to_high_priority || "no"),
    el("dt", {}, "Additional information"), el("dd", {}, body.additional_info || "none"),
    el("dt", {}, "Sent to"), el("dd", {}, "NCMEC CyberTipline (the org's configured environment)")));
  const problems = refusals(body);
  $("confirm-refusal").replaceChildren(...problems.map((p) => el("div", {}, p)));
  $("confirm-file").disabled = problems.length > 0;
}

let sending = false;  // Enter and a click on "File it" together still file once

export async function file(showError, afterFiling) {
  const body = decisionBody();
  if (refusals(body).length || sending) return;
  const c = review.current;
  sending = true;
  try {
    await call(`/v1/cases/${c.case_ref}/decision`, {method: "POST", body: JSON.stringify(body)});
  } catch (e) {
    $("confirm-refusal").textContent = e.message;
    return;
  } finally {
    sending = false;
  }
  closeDialog($("confirm"), "filed");
  $("controls").hidden = true;
  $("filing-status").replaceChildren(el("p", {}, "Filing the CyberTip with NCMEC…"));
  afterFiling();
  await follow(c.case_ref, c.case_number, showError);
}

async function follow(ref, number, showError) {
  for (;;) {
    let c;
    try {
      c = await call(`/v1/cases/${ref}?case_number=${number}`);
    } catch (e) { showError(e.message); return; }
    const status = $("filing-status");
    const shown = review.current;
    if (!status || !shown || shown.case_ref !== ref || shown.case_number !== number) return;  // another case is on screen
    if (c.status === "filed") {
      status.replaceChildren(el("p", {class: "filed"}, "Filed. NCMEC report id ",
        el("b", {id: "report-id"}, String(c.filing.report_id)), c.filing.environment ? ` (${c.filing.environment})` : ""));
      return;
    }
    if (c.status === "needs_attention") {
      // What to do, where it is done: the retry lives on the NCMEC reports page (this page has no retry button).
      const next = c.attention_permanent
        ? ["NCMEC refused this report for good: open the case again to decide it anew, or dismiss it."]
        : ["Fix the cause (the org's NCMEC account or settings), then retry the filing under Needs attention on ",
           el("a", {href: "/dashboard", id: "filing-retry-link"}, "NCMEC reports"), "."];
      status.replaceChildren(el("p", {class: "failed"}, "Filing failed: ", el("b", {id: "filing-failure"},
        c.attention_reason || "unknown reason")), el("p", {id: "filing-next"}, ...next));
      return;
    }
    status.replaceChildren(el("p", {}, `Filing the CyberTip with NCMEC… (${c.status}` +
      (c.filing.report_id ? `, report ${c.filing.report_id} open` : "") + ")"));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
