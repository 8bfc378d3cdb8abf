// Showing media safely. Nothing is downloaded when a case opens: an item's bytes are fetched when the reviewer
// reveals it, once (each fetch is a recorded view), and kept in the page; hidden again, it is shown blurred and
// greyscale as the reviewer's settings say, and revealing it again fetches nothing.
import {mediaBlob} from "./api.js";
import {$, el} from "./dom.js";
import {review} from "./state.js";

const loaded = new Map();  // media_id -> Promise<{url, video}>

export function forgetMedia() {
  for (const pending of loaded.values()) pending.then(({url}) => URL.revokeObjectURL(url), () => {});
  loaded.clear();
}

export function applyWellness(settings) {
  const root = document.documentElement.style;
  root.setProperty("--hidden-blur", `${settings.blur_px}px`);
  root.setProperty("--hidden-grey", settings.greyscale ? "1" : "0");
}

function card(index) {
  return document.querySelectorAll("#media .media")[index];
}

export async function reveal(index) {
  const item = review.current.media[index];
  const node = card(index);
  if (!node || !item.evidence) return;
  node.classList.add("revealed");
  if (!loaded.has(item.media_id)) {
    loaded.set(item.media_id, mediaBlob(item.content_url).then((blob) => ({
      url: URL.createObjectURL(blob), video: blob.type.startsWith("video/")})));
    loaded.get(item.media_id).catch(() => loaded.delete(item.media_id));
  }
  let fetched;
  try {
    fetched = await loaded.get(item.media_id);
  } catch (e) {
    node.classList.remove("revealed");  // so the next reveal tries again instead of hiding an empty frame
    throw e;
  }
  const {url, video} = fetched;
  item.viewed = true;  // the fetch was recorded in the view log
  node.querySelector(".viewed").textContent = "Viewed";
  const frame = node.querySelector(".frame");
  let shown = frame.querySelector("img, video");
  if (!shown) {
    const settings = review.wellness;
    shown = video
      ? el("video", {src: url, controls: true, muted: settings.video_muted, autoplay: !settings.video_paused,
                     preload: "metadata"})
      : el("img", {src: url, alt: `media ${index + 1}`});
    if (video) shown.muted = settings.video_muted;  // the attribute alone does not mute a created element
    frame.replaceChildren(shown);
  }
}

export function hide(index) {
  const node = card(index);
  if (!node) return;
  node.classList.remove("revealed");
  const video = node.querySelector("video");
  if (video) video.pause();
}

export function toggleReveal(index) {
  const node = card(index);
  if (node && node.classList.contains("revealed")) hide(index);
  else return reveal(index).catch(fetchFailed);
}

// A reveal that finds no media (the server refused or was unreachable) says so, rather than leaving a blank frame.
function fetchFailed(error) {
  $("error").textContent = `This item could not be fetched: ${error.message}. Reveal it again to retry.`;
}

export function bindHover(node, index) {
  node.addEventListener("mouseenter", () => { if (review.wellness.reveal_on_hover) reveal(index).catch(fetchFailed); });
  node.addEventListener("mouseleave", () => { if (review.wellness.reblur_on_leave) hide(index); });
}
