// The case page, built around the reported user: who they are, every item of theirs and why it is here, how
// urgent the case is and why, the conversations, and the decision form, in the order a reviewer works.
import {$, describe, el, when} from "./dom.js";
import {bindHover} from "./media.js";
import {judgeable, review} from "./state.js";

const REASON_WORDS = {
  platform_signal: "Platform escalated", hash_match: "Hash bank match", classifier: "Classifier",
  user_report: "User report", manual_escalation: "Escalated by a reviewer", associated_media: "Other media of the user",
};

export function renderCase(onChange) {
  const c = review.current;
  $("case").replaceChildren(
    el("header", {class: "case-head"},
      el("h1", {}, `Case ${c.case_number} of user `, el("code", {}, c.user_id)),
      el("span", {class: `level ${c.urgency ? c.urgency.level : "normal"}`}, (c.urgency ? c.urgency.level : "normal").toUpperCase()),
      el("span", {}, ` · ${c.status} · opened ${when(c.opened_at)}`),
      el("span", {id: "claim"}), el("button", {id: "claim-button", type: "button", onclick: () => onChange("claim")}, "Claim ", el("kbd", {}, "c"))),
    userSection(c), urgencySection(c),
    el("section", {id: "media-section"}, el("h2", {}, `Media (${c.media.length})`),
      el("div", {id: "media"}, c.media.map((m, index) => mediaCard(m, index, onChange)))),
    conversationsSection(c, onChange), decisionForm(onChange),
    el("div", {id: "filing-status", role: "status"}),
  );
  renderClaim();
  review.current.media.forEach((_, index) => updateCard(index));
}

function userSection(c) {
  const meta = c.user_metadata;
  return el("section", {id: "user"}, el("h2", {}, "Reported user"),
    el("dl", {}, el("dt", {}, "platform id"), el("dd", {}, c.user_id),
      c.prior_report_ids.length ? [el("dt", {}, "earlier CyberTips"), el("dd", {}, c.prior_report_ids.join(", "))] : null),
    meta ? describe(meta) : el("p", {class: "muted"}, "The platform sent nothing about this user yet."),
    c.media_list_error ? el("p", {class: "warn"}, `The user's media list is incomplete: ${c.media_list_error}`) : null);
}

function urgencySection(c) {
  const u = c.urgency;
  if (!u || !u.reasons.length) return el("section", {id: "urgency-reasons"}, el("h2", {}, "Urgency: normal"),
    el("p", {class: "muted"}, "Nothing in the case suggests escalating."));
  return el("section", {id: "urgency-reasons"}, el("h2", {}, `Urgency: ${u.level} (score ${u.score})`),
    el("ul", {}, u.reasons.map((r) => el("li", {}, el("b", {}, r.text), ` (weight ${r.weight}) `,
      r.evidence.map((e) => el("span", {class: "evidence"}, e))))));
}

function mediaCard(m, index, onChange) {
  const state = m.broken ? `Broken: ${m.broken}` : !m.evidence ? "Being preserved…"
    : !m.analysis ? "Preserved, being hashed…" : `Preserved and hashed (${m.evidence.size} bytes)`;
  const node = el("div", {class: "media" + (m.broken ? " broken" : "") + (!judgeable(m) ? " unjudgeable" : ""),
                          dataset: {mediaId: m.media_id}, onclick: () => onChange("cursor", index)},
    el("div", {class: "frame"}, el("span", {class: "placeholder"}, m.evidence ? "Hidden · v to reveal" : "No bytes")),
    el("div", {class: "decision"}),
    // A button, not a checkbox: a focused button leaves the keyboard shortcuts working.
    el("button", {type: "button", class: "supplemental", "aria-pressed": "false", disabled: !judgeable(m),
                  title: "Sent as Supplemental Reported: context such as a screenshot, not itself classified",
                  onclick: (e) => { e.stopPropagation(); onChange("supplemental", index); }},
      "Supplemental ", el("kbd", {}, "s")),
    el("div", {class: "tags"}, review.vocabulary.file_annotations.map((a) => el("span", {class: "tag", dataset: {annotation: a}}, a))),
    el("p", {class: "state"}, state),
    el("p", {class: "name"}, m.file_name || m.media_id, m.content_type ? ` · ${m.content_type}` : ""),
    el("ul", {class: "reasons"}, m.reasons.map((r) => el("li", {},
      el("b", {}, REASON_WORDS[r.kind] || r.kind), r.detail ? `: ${r.detail}` : "",
      // An escalation names the reviewer by account; a user report's `by` is the platform's id of the reporter,
      // never looked up among reviewers.
      r.by ? ` · by ${r.kind === "manual_escalation" ? review.names[r.by] || r.by : r.by}` : "", r.at ? ` · ${when(r.at)}` : ""))),
    m.report_text ? el("blockquote", {class: "report-text"}, m.report_text) : null,
    m.analysis ? analysis(m.analysis) : null,
    el("details", {}, el("summary", {}, "File details"), el("dl", {},
      m.uploaded_at ? [el("dt", {}, "uploaded"), el("dd", {}, when(m.uploaded_at))] : null,
      m.upload_ip ? [el("dt", {}, "upload IP"), el("dd", {}, m.upload_ip)] : null,
      m.location_url ? [el("dt", {}, "location"), el("dd", {}, m.location_url)] : null,
      m.evidence ? [el("dt", {}, "SHA-256"), el("dd", {}, el("code", {}, m.evidence.sha256))] : null),
      m.file_metadata ? describe(m.file_metadata) : null),
    el("p", {class: "viewed"}, m.viewed ? "Viewed" : "Not viewed yet"));
  bindHover(node, index);
  return node;
}

function analysis(a) {
  return el("ul", {class: "analysis"},
    a.matches.map((match) => el("li", {class: "match"}, `Bank ${match.bank_name}: ${match.hash_type} distance ${match.distance}`,
      match.classification ? ` (${match.classification})` : "")),
    a.classifier_priority ? el("li", {}, `Classifier priority: ${a.classifier_priority}`) : null,
    a.pdq_quality !== null ? el("li", {}, `PDQ quality ${a.pdq_quality}`) : null);
}

export function updateCard(index) {
  const m = review.current.media[index];
  const d = review.decisions[m.media_id];
  const node = document.querySelectorAll("#media .media")[index];
  node.classList.toggle("current", index === review.cursor);
  node.querySelector(".decision").textContent = d.reported ? (d.classification || "reported")
    : d.supplemental ? "supplemental" : "not reported";
  node.querySelector("button.supplemental").setAttribute("aria-pressed", String(d.supplemental));
  node.querySelectorAll(".tag").forEach((tag) => tag.classList.toggle("on", d.annotations.includes(tag.dataset.annotation)));
  if (index === review.cursor) node.scrollIntoView({block: "nearest"});
}

export function renderClaim() {
  const claim = review.current && review.current.claim;
  const holder = $("claim");
  if (!holder) return;
  // The person's name from the API; only a holder that is no account (an API key) is shown by its id.
  holder.textContent = claim ? ` · claimed by ${claim.claimed_by_name || claim.claimed_by} at ${when(claim.claimed_at)}`
                             : " · not claimed";
}

function conversationsSection(c, onChange) {
  return el("section", {id: "conversations"}, el("h2", {}, `Conversations (${c.conversations.length})`),
    c.conversations.length ? null : el("p", {class: "muted"}, "None sent by the platform."),
    c.conversations.map((thread) => el("div", {class: "thread"},
      el("label", {}, el("input", {type: "checkbox", class: "attach", dataset: {threadId: thread.thread_id},
        onchange: (e) => onChange("attach", thread.thread_id, e.target.checked)}),
        ` Attach thread ${thread.thread_id} as a conversation file`),
      el("table", {}, el("tr", {}, ["sent", "from", "to", "type", "message"].map((h) => el("th", {}, h))),
        thread.messages.map((msg) => el("tr", {}, el("td", {}, when(msg.sent_at)), el("td", {}, msg.sender),
          el("td", {}, msg.recipient), el("td", {}, msg.message_type), el("td", {}, msg.content)))))));
}

function person(kind) {
  const input = (name, text) => el("label", {}, text, " ", el("input", {id: `${kind}-${name}`, size: 18, maxlength: 255}));
  return el("fieldset", {}, el("legend", {}, kind === "victim" ? "Victim" : "Intended recipient"),
    input("screen_name", "screen name"), input("esp_identifier", "platform id"), input("email", "email"),
    input("first_name", "first name"), input("last_name", "last name"));
}

export function personFrom(kind) {
  const value = (name) => $(`${kind}-${name}`).value.trim();
  const person = {screen_name: value("screen_name") || null, esp_identifier: value("esp_identifier") || null,
                  emails: value("email") ? [{value: value("email")}] : []};
  if (value("first_name") || value("last_name")) person.person = {first_name: value("first_name") || null,
                                                                  last_name: value("last_name") || null};
  const given = person.screen_name || person.esp_identifier || person.emails.length || person.person;
  return given ? person : null;
}

function decisionForm(onChange) {
  const v = review.vocabulary;
  return el("section", {id: "controls"}, el("h2", {}, "Report"),
    el("label", {}, "Incident type ", el("kbd", {}, "i"), "+", el("kbd", {}, "1-8"), " ",
      el("select", {id: "incident", onchange: (e) => onChange("incident", e.target.value)},
        el("option", {value: ""}, "— choose —"),
        v.incident_types.map((t, n) => el("option", {value: t}, `${n + 1}. ${t}`)))),
    el("fieldset", {id: "report-annotations"}, el("legend", {}, "Report annotations (", el("kbd", {}, "r"), "+letter)"),
      v.report_annotations.map((a) => el("label", {}, el("input", {type: "checkbox", dataset: {annotation: a},
        onchange: () => onChange("report-annotation", a)}), ` ${a} `))),
    el("div", {class: "people"}, person("victim"), person("recipient")),
    el("label", {}, "Urgent (escalateToHighPriority; leave empty to clear the suggestion) ", el("kbd", {}, "u"),
      el("br"), el("textarea", {id: "urgency", rows: 4, cols: 90, maxlength: 3000})),
    el("label", {}, "Additional information", el("br"),
      el("textarea", {id: "info", rows: 2, cols: 90, maxlength: 3000})),
    el("p", {}, el("button", {id: "submit", type: "button", onclick: () => onChange("submit")},
      "Review and file CyberTip ", el("kbd", {}, "Enter"))));
}
