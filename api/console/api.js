// The console's only way to the API: the same public endpoints any client uses, with the
// signed-in bearer token. The token lives in this tab's sessionStorage (or, where the console
// shares an origin with the web app, in the Supabase session); it is never logged, never put in
// a URL, and sent only in the Authorization header of same-origin requests.

const TOKEN_KEY = 'dynamoi.console.token';

/** The Supabase session's access token, when the web app's session is on this origin. */
function supabaseToken() {
  try {
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (key && /^sb-.+-auth-token$/.test(key)) {
        const session = JSON.parse(localStorage.getItem(key) || 'null');
        if (session && typeof session.access_token === 'string') return session.access_token;
      }
    }
  } catch {
    // Storage disabled or a value that is not JSON: no Supabase session.
  }
  return null;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || supabaseToken();
}

export function signIn(raw) {
  const value = raw.trim().replace(/^Bearer\s+/i, '');
  const decoded = claims(value);
  if (!decoded) throw new Error('That is not a JSON Web Token (three dot-separated parts).');
  sessionStorage.setItem(TOKEN_KEY, value);
  return decoded;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * What the token says, without verifying it (the server verifies every call): subject, role,
 * expiry. Only used to choose which pages to offer; the API decides what may be read.
 * Supabase's shape: `role` `authenticated` is a person, `service_role` a service, staff carry
 * `app_metadata.dynamoi_role`.
 */
export function claims(value = token()) {
  if (!value) return null;
  const parts = value.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    const staff = payload.app_metadata && payload.app_metadata.dynamoi_role;
    let role = null;
    if (payload.role === 'service_role' || payload.role === 'service') role = 'service';
    else if (staff) role = staff;
    else if (payload.role === 'authenticated' || payload.role === 'person') role = 'person';
    else if (payload.role === 'support' || payload.role === 'auditor') role = payload.role;
    return { sub: String(payload.sub || ''), role, exp: payload.exp || null };
  } catch {
    return null;
  }
}

/** A refusal of the API, with its problem+json fields. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `the API answered ${status}`);
    this.status = status;
    this.code = problem && problem.code;
  }
}

/**
 * Calls the API: `api('/v1/me')`, `api(path, {method: 'POST', body: {...}})`. Commands carry an
 * `Idempotency-Key`, so a retried click cannot do a thing twice. Answers the JSON body; throws
 * `ApiError` for a problem, and lets an abort (the page was left) through as an `AbortError`.
 */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const bearer = token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    headers['Idempotency-Key'] = crypto.randomUUID();
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

let documentPromise = null;

/**
 * Whether the API documents `path` (its OpenAPI document lists every route it answers): parts
 * of the console that need a newer API ask first, and show "not available" instead of calling.
 */
export async function documented(path) {
  if (!documentPromise) {
    documentPromise = fetch('/openapi.json', { cache: 'no-store', credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .catch(() => ({ paths: {} }));
  }
  const doc = await documentPromise;
  return Boolean(doc.paths && doc.paths[path]);
}

/**
 * An optional endpoint: its answer, or `null` when this API does not have it (not documented,
 * or 404 / 405 from the router).
 */
export async function optional(path, template, options) {
  if (!(await documented(template || path))) return null;
  try {
    return await api(path, options);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}

/** A path segment, escaped. */
export function seg(value) {
  return encodeURIComponent(String(value));
}
