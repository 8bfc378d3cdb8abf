// The NCMEC Reports dashboard: every filed report with what was sent and what NCMEC answered, and the filings
// that need someone: failed reports and cases that need attention, each with its retry.
import {$, call, el, loadReviewers, mediaBox, nameOf, request, session, showError, startPage, when} from "./common.js";

const PAGE_SIZE = 20;
const REVIEWING = ["admin", "moderator_manager", "child_safety_moderator"];
let offset = 0;

function filters() {
  const options = (values) => values.map((v) => el("option", {value: v}, v || "any"));
  return el("form", {class: "filters", id: "filters", onsubmit: (e) => { e.preventDefault(); offset = 0; load(); }},
    el("label", {}, "Status", el("select", {id: "f-status"},
      options(["", "open", "finished", "failed", "retracted", "expired"]))),
    el("label", {}, "Environment", el("select", {id: "f-environment"}, options(["", "sandbox", "test", "production"]))),
    el("label", {}, "Opened from", el("input", {id: "f-from", type: "date"})),
    el("label", {}, "Opened to", el("input", {id: "f-to", type: "date"})),
    el("label", {}, "NCMEC report id", el("input", {id: "f-report", inputmode: "numeric", size: 12})),
    el("button", {type: "submit", id: "apply"}, "Apply"));
}

function query() {
  const params = new URLSearchParams({limit: PAGE_SIZE, offset});
  const set = (name, value) => { if (value) params.set(name, value); };
  set("status", $("f-status").value);
  set("environment", $("f-environment").value);
  if ($("f-from").value) params.set("opened_from", new Date(`${$("f-from").value}T00:00:00`).toISOString());
  if ($("f-to").value) {
    const end = new Date(`${$("f-to").value}T00:00:00`);
    end.setDate(end.getDate() + 1);  // the whole of the last day
    params.set("opened_to", end.toISOString());
  }
  set("ncmec_report_id", $("f-report").value.trim());
  return params;
}

const userLabel = (users) => users.map((u) => [u.screen_name, u.esp_identifier].filter(Boolean).join(" · ")).join("; ");

async function load() {
  showError(null);
  try {
    const response = await request(`/v1/reports?${query()}`);
    const total = Number(response.headers.get("X-Total-Count") || 0);
    const reports = await response.json();
    $("reports").replaceChildren(...reports.map((r) => el("tr", {class: "clickable", dataset: {reportId: r.id},
                                                                onclick: () => show(r)},
      el("td", {}, String(r.ncmec_report_id)),
      el("td", {}, el("span", {class: `badge ${r.status}`}, r.status)),
      el("td", {}, el("span", {class: `badge ${r.test ? "test" : "production"}`},
                       r.test ? `test (${r.ncmec_environment})` : "production")),
      el("td", {}, userLabel(r.reported_users)),
      el("td", {}, `${r.files.filter((f) => f.kind !== "conversation").length} files, ` +
                   `${r.files.filter((f) => f.kind === "conversation").length} conversations`),
      el("td", {}, nameOf(r.submitted_by)),
      el("td", {}, when(r.opened_at)))));
    $("page").textContent = total ? `${offset + 1}–${offset + reports.length} of ${total}` : "No reports match.";
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + reports.length >= total;
  } catch (e) { showError(e); }
}

async function text(path) {
  try { return await (await request(path)).text(); } catch (e) { return `(${e.message})`; }
}

function fileItem(report, file) {
  const details = el("div", {});
  const children = [el("b", {}, file.kind), ` ${file.ncmec_file_id} · ${file.media_id} · md5 ${file.md5} · ` +
                    `uploaded ${when(file.uploaded_at)}`, el("br")];
  const links = el("div", {class: "actions"},
    el("a", {href: file.content_url, class: "download"}, file.kind === "conversation" ? "Download CSV" : "Download"));
  if (file.file_details_sent) {
    links.append(el("button", {type: "button", class: "details", onclick: async () => {
      details.replaceChildren(el("pre", {class: "file-details"},
        await text(`/v1/reports/${report.id}/files/${file.ncmec_file_id}/details`)));
    }}, "fileDetails XML"));
  }
  if (file.kind === "conversation") {
    links.append(el("button", {type: "button", class: "show-csv", onclick: async () => {
      details.replaceChildren(el("pre", {class: "csv"}, await text(file.content_url)));
    }}, "Show CSV"));
  }
  return el("li", {dataset: {fileId: file.ncmec_file_id}}, children, links,
            file.kind === "conversation" ? null : mediaBox(file.content_url, "hidden"), details);
}

async function show(report) {
  for (const row of document.querySelectorAll("#reports tr")) {
    row.classList.toggle("selected", row.dataset.reportId === String(report.id));
  }
  $("detail").replaceChildren(...[
    el("h2", {}, `Report ${report.ncmec_report_id}`),
    el("p", {}, `Case ${report.case_ref} #${report.case_number} · ${report.status} · ` +
                `${report.test ? "test" : "production"} (${report.ncmec_environment}) · opened ${when(report.opened_at)}` +
                ` · finished ${when(report.finished_at)}`),
    report.failure_reason ? el("p", {class: "broken"}, `Failed: ${report.failure_reason}`) : null,
    el("p", {}, `Reported user: ${userLabel(report.reported_users) || "—"}` +
      (report.reported_users.some((u) => u.emails.length)
        ? ` · ${report.reported_users.flatMap((u) => u.emails).join(", ")}` : "")),
    report.escalation_reason ? el("p", {}, `Escalated: ${report.escalation_reason}`) : null,
    el("h2", {}, "Files"), el("ul", {class: "files"}, report.files.map((f) => fileItem(report, f))),
    el("h2", {}, "Report XML"), el("pre", {id: "report-xml"}, await text(`/v1/reports/${report.id}/xml`)),
    el("h2", {}, "Receipt"), el("pre", {id: "receipt"}, await text(`/v1/reports/${report.id}/receipt`)),
  ].filter(Boolean));
}

const POLL_MS = 1000;

// A retry is followed until NCMEC gave the report id or the filing failed again, so the person who clicked sees
// how it ended without reloading.
async function retry(caseRef, caseNumber) {
  showError(null);
  try {
    await call(`/v1/cases/${caseRef}/retry`, {method: "POST", body: JSON.stringify({case_number: caseNumber})});
    $("notice").textContent = "Retrying the filing…";
    await loadAttention();
    for (;;) {
      const c = await call(`/v1/cases/${encodeURIComponent(caseRef)}?case_number=${caseNumber}`);
      if (c.status === "filed") {
        $("notice").replaceChildren(`Case #${caseNumber} filed. NCMEC report id `,
          el("b", {id: "retry-report-id"}, String(c.filing.report_id)));
        break;
      }
      if (c.status === "needs_attention" && c.attention_reason) {
        $("notice").textContent = "";
        showError(new Error(`The retry failed too: ${c.attention_reason}`));
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    await Promise.all([load(), loadAttention()]);
  } catch (e) { showError(e); }
}

const retryButton = (caseRef, caseNumber) => REVIEWING.includes(session.role)
  ? el("button", {type: "button", class: "retry", onclick: () => retry(caseRef, caseNumber)}, "Retry") : null;

async function loadAttention() {
  try {
    const failed = await call("/v1/reports?status=failed&limit=50");
    const cases = REVIEWING.includes(session.role) ? await call("/v1/cases?status=needs_attention") : [];
    $("attention").replaceChildren(
      ...failed.map((r) => el("tr", {dataset: {reportId: r.id}}, el("td", {}, `Failed report ${r.ncmec_report_id}`),
        el("td", {}, r.failure_reason || ""), el("td", {}, when(r.finished_at || r.opened_at)),
        el("td", {}, retryButton(r.case_ref, r.case_number)))),
      ...cases.map((c) => el("tr", {dataset: {caseRef: c.case_ref}}, el("td", {}, `Case #${c.case_number} needs attention`),
        el("td", {}, el("a", {href: `/review#${c.case_ref}`}, "open the case")), el("td", {}, when(c.updated_at)),
        el("td", {}, retryButton(c.case_ref, c.case_number)))));
    if (!failed.length && !cases.length) $("attention").replaceChildren(el("tr", {}, el("td", {}, "Nothing needs attention.")));
  } catch (e) { showError(e); }
}

startPage(async () => {
  $("content").replaceChildren(el("h1", {}, "NCMEC reports"), filters(),
    el("table", {}, el("thead", {}, el("tr", {}, ["NCMEC report id", "Status", "Environment", "Reported user",
      "Files", "Filed by", "Opened"].map((h) => el("th", {}, h)))), el("tbody", {id: "reports"})),
    el("div", {class: "pager"},
      el("button", {type: "button", id: "prev", onclick: () => { offset = Math.max(0, offset - PAGE_SIZE); load(); }},
         "Previous"),
      el("span", {id: "page"}),
      el("button", {type: "button", id: "next", onclick: () => { offset += PAGE_SIZE; load(); }}, "Next")),
    el("section", {id: "detail"}),
    el("h2", {}, "Needs attention"), el("table", {}, el("tbody", {id: "attention"})));
  await loadReviewers();
  await Promise.all([load(), loadAttention()]);
});
