// Building elements from text: everything a platform or a user wrote is set as text, never parsed as HTML.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export const $ = (id) => document.getElementById(id);

export function when(value) {
  return value ? new Date(value).toLocaleString() : "";
}

// Field names as a person reads them: "account_permanently_disabled" -> "account permanently disabled".
const label = (key) => key.replace(/_/g, " ");

function isEmpty(value) {
  return value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0) ||
    (typeof value === "object" && !Array.isArray(value) && Object.values(value).every(isEmpty));
}

// Whatever the platform said, as nested definition lists: every field it sent is shown, none is dropped.
export function describe(value) {
  if (Array.isArray(value)) return el("ol", {}, value.map((item) => el("li", {}, describe(item))));
  if (value !== null && typeof value === "object") {
    const rows = Object.entries(value).filter(([, v]) => !isEmpty(v));
    return el("dl", {}, rows.map(([k, v]) => [el("dt", {}, label(k)), el("dd", {}, describe(v))]));
  }
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return el("time", {datetime: value}, when(value));
  return document.createTextNode(String(value));
}

// Closing a dialog hands the keyboard back to the page at once. Chrome leaves focus on the control inside a closed
// dialog (the confirmation's text-only checkbox) until its next focus fix-up, whenever that runs; keys pressed in
// between went to that hidden checkbox and were dropped as typing (a `k` lost after Esc: the flaky keyboard test).
// `result` "" for a cancel, so a dialog closed by Esc never keeps the returnValue of an earlier "save".
export function closeDialog(dialog, result = "") {
  if (dialog.contains(document.activeElement)) document.activeElement.blur();
  if (dialog.open) dialog.close(result);
}
