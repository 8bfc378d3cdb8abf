// The case on screen and what the reviewer has chosen for it so far.
export const CLASSES = ["A1", "A2", "B1", "B2"];

export const review = {
  vocabulary: null,   // NCMEC's words, from GET /v1/review/vocabulary
  session: null,
  wellness: null,
  names: {},          // "user:12" -> the reviewer's name, from GET /v1/reviewers
  current: null,      // GET /v1/cases/{ref}
  cursor: 0,
  decisions: {},      // media_id -> {reported, classification, annotations: [], supplemental}
  reportAnnotations: [],
  attach: new Set(),  // conversation thread ids
  incidentType: null,
  shownSuggestion: "",
  urgencyEdited: false,
};

export function startCase(caseView) {
  review.current = caseView;
  review.cursor = 0;
  review.decisions = Object.fromEntries(caseView.media.map((m) => [m.media_id,
    {reported: false, classification: null, annotations: [], supplemental: false}]));
  review.reportAnnotations = [];
  review.attach = new Set();
  review.incidentType = null;
  review.shownSuggestion = (caseView.urgency && caseView.urgency.suggested_reason) || "";
  review.urgencyEdited = false;
}

export function currentItem() {
  return review.current ? review.current.media[review.cursor] : null;
}

// Only an item whose bytes were preserved and hashed can be judged; any other is left out of the report.
export function judgeable(item) {
  return item.evidence !== null && item.analysis !== null && !item.broken;
}

export function toggle(list, value) {
  return list.includes(value) ? list.filter((v) => v !== value) : [...list, value];
}
