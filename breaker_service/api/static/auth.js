// The token: entered once, kept in this tab's sessionStorage. Its payload is decoded here
// only to decide what to show (admin buttons); the server verifies it on every request.

const KEY = "breaker-service.token";

export const ADMIN_SCOPE = "breakers:admin";

export function storedToken() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/** The JWT's claims, unverified, or null when it is not a JWT. */
export function claimsOf(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** Who the token says we are: {subject, scopes, expires} (expires in epoch seconds). */
export function principalOf(token) {
  const claims = claimsOf(token) ?? {};
  const raw = claims.scope ?? claims.scopes ?? "";
  const scopes = Array.isArray(raw) ? raw.map(String) : String(raw).split(/\s+/).filter(Boolean);
  return {
    subject: typeof claims.sub === "string" ? claims.sub : "unknown",
    scopes,
    expires: typeof claims.exp === "number" ? claims.exp : null,
  };
}

export const ANONYMOUS_ADMIN = {
  subject: "anonymous (AUTH_DISABLED)",
  scopes: ["breakers:read", "uploads:write", ADMIN_SCOPE],
  expires: null,
};
