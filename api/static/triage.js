// Triage: items the classifier placed between the org's thresholds. Escalate to the NCMEC queue, or dismiss.
import {$, call, el, mediaBox, showError, startPage, when} from "./common.js";

async function decide(item, card, action) {
  showError(null);
  const reason = card.querySelector(".reason").value.trim() || null;
  try {
    const outcome = await call(`/v1/triage/${item.screening_ref}/${action}`, {method: "POST",
                                                                             body: JSON.stringify({reason})});
    card.remove();
    $("notice").textContent = action === "escalation"
      ? `Escalated to the NCMEC queue${outcome.case_ref ? "" : " (its case is being opened)"}.` : "Dismissed.";
  } catch (e) { showError(e); }
}

function card(item) {
  const node = el("div", {class: "card", dataset: {screeningRef: item.screening_ref}},
    item.content_url ? mediaBox(item.content_url, `${item.content_type || "media"} · hidden`)
                     : el("p", {class: "broken"}, "The media could not be preserved."),
    el("p", {}, el("b", {}, `Classifier: ${item.classifier_priority}`), el("br"),
      `User ${item.creator_id} · item ${item.content_id}`, el("br"), `Flagged ${when(item.created_at)}`),
    item.screening_error ? el("p", {class: "broken"}, `Not screened automatically: ${item.screening_error}`) : null,
    el("label", {}, "Reason ", el("input", {class: "reason", maxlength: 3000, size: 28})),
    el("div", {class: "actions"},
      el("button", {type: "button", class: "escalate", onclick: () => decide(item, node, "escalation")}, "Escalate"),
      el("button", {type: "button", class: "dismiss", onclick: () => decide(item, node, "dismissal")}, "Dismiss")));
  return node;
}

async function load() {
  try {
    const items = await call("/v1/triage");
    $("items").replaceChildren(...(items.length ? items.map(card) : [el("p", {}, "Nothing waits in triage.")]));
  } catch (e) { showError(e); }
}

startPage(async () => {
  $("content").replaceChildren(el("h1", {}, "Triage"),
    el("p", {}, "Items the classifier flagged below the high-precision threshold. Media stays blurred and grey " +
                "until you reveal it; each reveal is recorded."),
    el("button", {id: "refresh", type: "button", onclick: load}, "Refresh"),
    el("div", {id: "items", class: "cards"}));
  await load();
});
