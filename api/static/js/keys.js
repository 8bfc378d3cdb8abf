// Every frequent action has a key; the help overlay (?) is built from this table, so it cannot drift from it.
import {$, el} from "./dom.js";

// After "a": a file annotation of the current item (all ten of NCMEC's).
export const FILE_ANNOTATION_KEYS = {
  d: "animeDrawingVirtualHentai", m: "potentialMeme", r: "viral", s: "possibleSelfProduction", p: "physicalHarm",
  x: "violenceGore", b: "bestiality", l: "liveStreaming", i: "infant", g: "generativeAi",
};
// After "r": a report annotation (all five).
export const REPORT_ANNOTATION_KEYS = {
  s: "sextortion", c: "csamSolicitation", m: "minorToMinorInteraction", p: "spam", o: "sadisticOnlineExploitation",
};

export const SHORTCUTS = [
  ["o", "open the next case in the queue (the first one when none is open)"],
  ["j  ↓  →", "next item"], ["k  ↑  ←", "previous item"],
  ["v  Space", "reveal or hide the current item (revealing fetches it once and is recorded as a view)"],
  ["1 2 3 4", "report the current item as A1 A2 B1 B2"], ["0  n", "do not report the current item"],
  ["s", "send the current item as supplemental (context such as a screenshot, not classified); again to undo"],
  ...Object.entries(FILE_ANNOTATION_KEYS).map(([key, name]) => [`a ${key}`, `file annotation ${name}`]),
  ...Object.entries(REPORT_ANNOTATION_KEYS).map(([key, name]) => [`r ${key}`, `report annotation ${name}`]),
  ["i 1…8", "incident type 1 to 8"], ["h", "attach or detach every conversation"],
  ["u", "write in the urgency box (Esc leaves it)"], ["c", "claim the case"], ["C", "release the claim"],
  ["Enter", "review what will be filed (the confirmation); Enter there files it"],
  ["t", "in the confirmation: file text-only"], ["w", "viewing settings"], ["?", "this help"], ["Esc", "close"],
];

export function showHelp() {
  $("help-table").replaceChildren(...SHORTCUTS.map(([keys, does]) => el("tr", {},
    el("td", {}, keys.split(/\s+/).map((k) => [el("kbd", {}, k), " "])), el("td", {}, does))));
  if (!$("help").open) $("help").showModal();
}
