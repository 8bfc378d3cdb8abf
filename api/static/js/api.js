// Talking to the Tipline API. The session is an HttpOnly cookie the script never sees; the CSRF token goes with
// every request that changes something, and proves the request comes from this page.
let csrfToken = null;
let onSignedOut = () => {};

export function setCsrfToken(token) { csrfToken = token; }
export function whenSignedOut(handler) { onSignedOut = handler; }

export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem.errors || []).map((e) => `${e.field}: ${e.message}`);
    super([problem.title || `HTTP ${status}`, ...fields].join("\n"));
    this.status = status;
    this.problem = problem;
  }
}

export async function call(path, options = {}) {
  const headers = {"Content-Type": "application/json"};
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  if (response.status === 401 && !path.startsWith("/v1/session")) onSignedOut("Your session has ended; sign in again.");
  if (response.status === 204) return null;
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  return response.json();
}

// The bytes of one item: every call is a recorded view, so only a reveal calls it.
export async function mediaBlob(url) {
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  return response.blob();
}
