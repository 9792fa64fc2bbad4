// The management API (/api/manage/...) with the management key (app setting MANAGEMENT_KEY) from
// sessionStorage, sent in the x-functions-key header only (never in a URL, never in localStorage);
// or, behind App Service Authentication, with the platform's session cookie and no key at all.
// /api/session says which; /api/me is the signed-in person's own page.

const KEY = "console.managementKey";

export class AuthError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}
export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

// One path or hash segment. encodeURIComponent throws URIError on a lone surrogate (an id from a
// service could hold one): that one character becomes U+FFFD instead of breaking the whole page.
export function part(value) {
  return encodeURIComponent(String(value).replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD"));
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) if (value) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Who is signed in: {appServiceAuth, signedIn, admin, name, upn, signInUrl, signOutUrl}. Asked once
// per page load; an app that does not answer is treated as "no sign-in", so the key prompt shows.
let current = null;
export async function session() {
  if (current) return current;
  try {
    const response = await fetch("/api/session", { cache: "no-store" });
    current = response.ok ? await response.json() : { appServiceAuth: false, signedIn: false, admin: false };
  } catch {
    current = { appServiceAuth: false, signedIn: false, admin: false };
  }
  return current;
}

export function api(path, options) {
  return request(`/api/manage/${path}`, options, true);
}

// The signed-in person's own page: /api/me and /api/me/preview (a 403 there is a locked field).
export function own(path, options) {
  return request(`/api/${path}`, options, false);
}

async function request(url, { method = "GET", params, body } = {}, managed) {
  // X-Requested-With: the server refuses a change riding on the sign-in cookie without it (another
  // site's form cannot add a header), so this page's own calls prove they come from this origin.
  const headers = { "X-Requested-With": "console" };
  if (managed && key.get()) headers["x-functions-key"] = key.get();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`${url}${query(params)}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "the app did not answer; check your connection and try again");
  }
  const text = await response.text();
  let document = null;
  try { document = text ? JSON.parse(text) : null; } catch { document = null; }
  if (response.status === 401 || (managed && response.status === 403)) {
    throw new AuthError(response.status, (document && document.error) || "refused");
  }
  if (!response.ok) {
    const reason = (document && document.error) || text.slice(0, 300) || response.statusText;
    throw new ApiError(response.status, `${response.status}: ${reason}`);
  }
  return document;
}

// Every item of a paged list (items + continuationToken), up to `limit`; `capped` if there is more.
export async function listAll(path, params, limit = 1000) {
  const items = [];
  let token = null;
  do {
    const page = await api(path, { params: { ...params, pageSize: String(Math.min(500, limit)), continuationToken: token } });
    items.push(...(page.items || page.value || []));
    token = page.continuationToken || null;
  } while (token && items.length < limit);
  return { items: items.slice(0, limit), capped: Boolean(token) || items.length > limit };
}
