// The reviewer's viewing settings, kept on the server (GET/PUT /v1/me/wellness) so they follow the person.
import {call} from "./api.js";
import {$} from "./dom.js";
import {applyWellness} from "./media.js";
import {review} from "./state.js";

const FIELDS = ["greyscale", "reveal_on_hover", "reblur_on_leave", "video_muted", "video_paused"];

export async function loadWellness() {
  review.wellness = await call("/v1/me/wellness");
  applyWellness(review.wellness);
}

export function openWellness() {
  const w = review.wellness;
  if (!w) return;  // not signed in, or the settings are still on their way
  $("w-blur_px").value = w.blur_px;
  $("w-blur-out").textContent = `${w.blur_px}px`;
  for (const name of FIELDS) $(`w-${name}`).checked = w[name];
  $("wellness").showModal();
}

export function bindWellness(showError) {
  $("w-blur_px").oninput = (e) => { $("w-blur-out").textContent = `${e.target.value}px`; };
  $("wellness").addEventListener("close", async () => {
    if ($("wellness").returnValue !== "save") return;
    const body = {blur_px: Number($("w-blur_px").value),
                  ...Object.fromEntries(FIELDS.map((name) => [name, $(`w-${name}`).checked]))};
    try {
      review.wellness = await call("/v1/me/wellness", {method: "PUT", body: JSON.stringify(body)});
      applyWellness(review.wellness);
    } catch (e) { showError(e.message); }
  });
}
