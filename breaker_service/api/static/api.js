// The JSON API, read with the bearer token. Every URL is relative to the service's root,
// found from this module's own URL (.../dashboard/static/api.js), so a path prefix works.

export const SERVICE_ROOT = new URL("../../", import.meta.url);

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function url(path, params = {}) {
  const target = new URL(path, SERVICE_ROOT);
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) target.searchParams.set(key, String(value));
  }
  return target;
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body?.detail ?? (text || response.statusText);
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

/** The unauthenticated page configuration: {auth_disabled, poll_interval}. */
export async function dashboardConfig() {
  return parse(await fetch(url("dashboard/config"), { cache: "no-store" }));
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  async get(path, params = {}) {
    const response = await fetch(url(path, params), { headers: this.headers(), cache: "no-store" });
    return parse(response);
  }

  async post(path, body) {
    const response = await fetch(url(path), {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    });
    return parse(response);
  }
}
