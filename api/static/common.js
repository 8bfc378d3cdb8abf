// Shared by the queue, triage and dashboard pages: signing in, calling the API with the CSRF token, the nav.
export const $ = (id) => document.getElementById(id);
// The session is an HttpOnly cookie the script never sees; the CSRF token goes with every request that changes
// something, and proves the request comes from this page.
let csrfToken = null;
export let session = null;

export async function request(path, options = {}) {
  const headers = {"Content-Type": "application/json"};
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  if (response.status === 401 && !path.startsWith("/v1/session")) showSignIn("Your session has ended; sign in again.");
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    const detail = problem.detail ? `: ${problem.detail}` : "";
    throw new Error(`${problem.title || response.status}${detail}` +
      (problem.errors || []).filter((e) => !problem.detail || !problem.detail.includes(e.message))
        .map((e) => `\n${e.field}: ${e.message}`).join(""));
  }
  return response;
}

export async function call(path, options = {}) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

export function showError(error) { $("error").textContent = error ? error.message || String(error) : ""; }

// Claims and decisions name people by account ("user:12"); the page shows their names.
let names = {};
export async function loadReviewers() {
  try {
    const reviewers = await call("/v1/reviewers");
    names = Object.fromEntries(reviewers.map((r) => [r.actor, r.username]));
    return reviewers;
  } catch (e) { return []; }  // an auditor may not list reviewers: ids are shown as they are
}
export const nameOf = (actor) => names[actor] || actor;

const PAGES = [["/review", "Review"], ["/queue", "Queue"], ["/triage", "Triage"], ["/dashboard", "NCMEC reports"]];
let onSignedIn = () => {};

function renderChrome() {
  const nav = el("nav", {}, PAGES.map(([href, label]) =>
    el("a", {href, "aria-current": location.pathname === href ? "page" : null}, label)));
  const signin = el("form", {id: "signin", hidden: true, onsubmit: signIn},
    el("label", {}, "Name ", el("input", {id: "username", autocomplete: "username", required: true})),
    el("label", {}, "Password ", el("input", {id: "password", type: "password", autocomplete: "current-password",
                                             required: true})),
    el("button", {id: "signin-button", type: "submit"}, "Sign in"),
    el("a", {id: "sso", href: "/v1/session/oidc/login"}, "Sign in with single sign-on"));
  const signedIn = el("div", {id: "signed-in", hidden: true}, el("span", {id: "who"}),
    el("button", {id: "signout", type: "button", onclick: signOut}, "Sign out"));
  $("top").replaceChildren(nav, signin, signedIn);
}

function showSignIn(message) {
  csrfToken = null;
  session = null;
  $("signin").hidden = false;
  $("signed-in").hidden = true;
  $("content").hidden = true;
  $("error").textContent = message || "";
}

async function showSignedIn(current) {
  session = current;
  csrfToken = current.csrf_token;
  $("signin").hidden = true;
  $("signed-in").hidden = false;
  $("who").textContent = `${current.username || "API key"} · ${current.role} · ${current.org_id}`;
  $("password").value = "";
  $("content").hidden = false;
  showError(null);
  await loadViewing();  // before the page draws any media
  await onSignedIn(current);
}

async function signIn(event) {
  event.preventDefault();
  try {
    await showSignedIn(await call("/v1/session", {method: "POST",
      body: JSON.stringify({username: $("username").value, password: $("password").value})}));
  } catch (e) { showError(e); }
}

async function signOut() {
  try { await call("/v1/session", {method: "DELETE"}); } catch (e) { /* ended already */ }
  showSignIn("Signed out.");
}

export async function startPage(handler) {
  onSignedIn = handler;
  renderChrome();
  try { await showSignedIn(await call("/v1/session")); } catch (e) { showSignIn(""); }
}

// How this person wants media shown (GET /v1/me/wellness, the same settings the review page keeps): blur
// strength and greyscale while hidden, reveal on hover, hide again on leaving, videos muted and paused. Until they
// arrive, and for a caller who has none (an API key, an auditor), the safest defaults.
const SAFE_VIEWING = {blur_px: 24, greyscale: true, reveal_on_hover: false, reblur_on_leave: true, video_muted: true,
                      video_paused: true};
export let viewing = {...SAFE_VIEWING};

async function loadViewing() {
  try { viewing = {...SAFE_VIEWING, ...(await call("/v1/me/wellness"))}; } catch (e) { viewing = {...SAFE_VIEWING}; }
  const root = document.documentElement.style;
  root.setProperty("--hidden-blur", `${viewing.blur_px}px`);
  root.setProperty("--hidden-grey", viewing.greyscale ? "1" : "0");
}

// Media stays hidden until the reviewer asks; it is fetched once per box (each fetch is a recorded view) and kept,
// so hiding and revealing again fetches nothing. Hidden once fetched, it is blurred and grey as the settings say.
export function mediaBox(contentUrl, label) {
  const box = el("div", {class: "media-box hidden-media"}, el("div", {class: "placeholder"}, label || "Hidden"));
  let fetching = null;
  const button = el("button", {type: "button", class: "reveal"}, "Reveal");

  function hide() {
    box.classList.add("hidden-media");
    button.textContent = "Reveal";
    const video = box.querySelector("video");
    if (video) video.pause();
  }

  async function show() {
    fetching = fetching || request(contentUrl).then((response) => response.blob()).then((blob) => {
      const url = URL.createObjectURL(blob);
      const media = blob.type.startsWith("video/")
        ? el("video", {src: url, controls: true, muted: viewing.video_muted, autoplay: !viewing.video_paused,
                       preload: "metadata"})
        : el("img", {src: url, alt: label || "media"});
      if (media.tagName === "VIDEO") media.muted = viewing.video_muted;  // the attribute alone does not mute it
      box.replaceChildren(media);
    });
    try {
      await fetching;
    } catch (e) {
      fetching = null;  // the next reveal tries again
      showError(e);
      return;
    }
    box.classList.remove("hidden-media");
    button.textContent = "Hide";
  }

  button.addEventListener("click", () => (box.classList.contains("hidden-media") ? show() : hide()));
  const wrap = el("div", {class: "media-wrap"}, box, button);
  wrap.addEventListener("mouseenter", () => { if (viewing.reveal_on_hover) show(); });
  wrap.addEventListener("mouseleave", () => { if (viewing.reblur_on_leave) hide(); });
  return wrap;
}
