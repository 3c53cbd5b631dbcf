// The dashboard: sign in (unless auth is disabled), then poll the JSON API every
// poll_interval seconds (1 s by default) and update the page in place. Polling, not
// server push: every read is an ordinary API call with the bearer token.

import { ANONYMOUS_ADMIN, ADMIN_SCOPE, forgetToken, principalOf, storedToken, storeToken } from "./auth.js";
import { Api, ApiError, dashboardConfig } from "./api.js";
import { BreakerCard } from "./cards.js";
import { clock } from "./dom.js";
import { ReplicaFeed, TransitionFeed } from "./feeds.js";
import { renderOutbox, renderUploads } from "./tables.js";
import { Timelines } from "./timeline.js";

const PROVIDERS_EVERY = 10; // polls between two reads of /providers
const UPLOADS_SHOWN = 15;
const REPLICA_WINDOW = 600;

const AUTH_WARNING = "AUTH_DISABLED=true: no authentication, everyone is an admin. Local use only.";

const $ = (id) => document.getElementById(id);

const session = {
  api: null,
  principal: null,
  interval: 1,
  authDisabled: false,
  running: false,
  polling: false,
  again: false,
  timer: null,
  polls: 0,
  cards: new Map(),
  transitions: new Map(),
  replicas: new Map(),
  timelines: null,
};

function banner(text, kind = "info") {
  const el = $("banner");
  el.hidden = !text;
  el.textContent = text ?? "";
  el.className = kind === "error" ? "banner error" : "banner";
  el.dataset.kind = kind;
}

function showLogin(message = null) {
  stop();
  $("main").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message ?? "";
  $("token-input").focus();
}

function stop() {
  session.running = false;
  clearTimeout(session.timer);
}

function resetView() {
  session.cards.clear();
  session.transitions.clear();
  session.replicas.clear();
  session.polls = 0;
  $("cards").replaceChildren();
  $("timelines").replaceChildren();
  $("transition-detail").hidden = true;
  $("transition-log-body").replaceChildren();
  session.timelines = new Timelines($("timelines"), $("transition-detail"));
  for (const button of document.querySelectorAll(".window-picker button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.window) === session.timelines.span));
  }
}

async function act(name, action, reason) {
  const status = await session.api.post(`breakers/${encodeURIComponent(name)}/${action}`, { reason });
  schedule(0);
  return status;
}

function card(name) {
  let found = session.cards.get(name);
  if (!found) {
    const admin = session.principal.scopes.includes(ADMIN_SCOPE);
    found = new BreakerCard(name, { admin, act });
    session.cards.set(name, found);
    session.transitions.set(name, new TransitionFeed(name));
    session.replicas.set(name, new ReplicaFeed(name, REPLICA_WINDOW));
    $("cards").append(found.el);
  }
  return found;
}

async function pollOnce() {
  const now = Date.now() / 1000;
  const wantProviders = session.polls % PROVIDERS_EVERY === 0;
  // The cards need /breakers; the rest is shown when it comes (a failing outbox read
  // must not freeze the breaker cards).
  const [breakers, uploads, outbox, providers] = await Promise.allSettled([
    session.api.get("breakers"),
    session.api.get("uploads", { limit: UPLOADS_SHOWN }),
    session.api.get("outbox"),
    wantProviders ? session.api.get("providers") : Promise.resolve(null),
  ]).then((results) => {
    const auth = results.find((r) => r.status === "rejected" && [401, 403].includes(r.reason?.status));
    if (auth) throw auth.reason;
    if (results[0].status === "rejected") throw results[0].reason;
    return results.map((r) => (r.status === "fulfilled" ? r.value : { error: r.reason }));
  });
  const receivedAt = Date.now();
  const names = [];
  for (const status of breakers.breakers) {
    names.push(status.name);
    card(status.name).update(status, receivedAt);
  }
  if (providers && !providers.error) {
    const byName = new Map(providers.providers.map((p) => [p.name, p]));
    for (const name of names) card(name).setProvider(byName.get(name));
  }
  await Promise.all(
    names.map(async (name) => {
      const [, seen] = await Promise.all([
        session.transitions.get(name).refresh(session.api, now),
        session.replicas.get(name).refresh(session.api, now),
      ]);
      card(name).setReplicas(seen, REPLICA_WINDOW);
    }),
  );
  renderTimelines();
  renderUploads($("uploads-body"), uploads.uploads ?? [], uploads.error);
  renderOutbox($("outbox"), outbox);
  session.polls += 1;
  document.body.dataset.polls = String(session.polls);
  $("updated").textContent = `updated ${clock(receivedAt / 1000)}`;
}

function renderTimelines() {
  const now = Date.now() / 1000;
  for (const [name, feed] of session.transitions) {
    const current = session.cards.get(name)?.status?.state ?? "closed";
    session.timelines.render(name, feed, current, now);
  }
  session.timelines.renderLog($("transition-log-body"), session.transitions, now);
}

async function loop() {
  if (!session.running) return;
  if (session.polling) {
    session.again = true;
    return;
  }
  session.polling = true;
  try {
    await pollOnce();
    if (session.authDisabled) banner(AUTH_WARNING, "warning");
    else banner(null);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      forgetToken();
      showLogin(`Signed out: ${error.message}. Enter a token again.`);
      return;
    }
    if (error instanceof ApiError && error.status === 403) {
      forgetToken();
      showLogin(`This token may not read breakers (${error.message}).`);
      return;
    }
    banner(`Cannot refresh (${error.message}); retrying every ${session.interval} s.`, "error");
  } finally {
    session.polling = false;
  }
  schedule(session.again ? 0 : session.interval * 1000);
  session.again = false;
}

function schedule(delay) {
  if (!session.running) return;
  clearTimeout(session.timer);
  session.timer = setTimeout(loop, delay);
}

function start(token) {
  session.api = new Api(token);
  session.principal = token ? principalOf(token) : ANONYMOUS_ADMIN;
  $("login").hidden = true;
  $("main").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = session.principal.subject;
  $("who-scopes").textContent = session.principal.scopes.join(" ");
  $("sign-out").hidden = session.authDisabled;
  document.body.dataset.admin = String(session.principal.scopes.includes(ADMIN_SCOPE));
  resetView();
  session.running = true;
  schedule(0);
}

async function boot() {
  let config;
  try {
    config = await dashboardConfig();
  } catch (error) {
    banner(`Cannot reach the service: ${error.message}. Reload to try again.`, "error");
    return;
  }
  session.interval = Number(config.poll_interval) || 1;
  session.authDisabled = Boolean(config.auth_disabled);
  $("live").textContent = `Live: polls the JSON API every ${session.interval} s (no server push).`;
  document.body.dataset.pollInterval = String(session.interval);

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return;
    storeToken(token);
    $("token-input").value = "";
    start(token);
  });
  $("sign-out").addEventListener("click", () => {
    forgetToken();
    showLogin("Signed out.");
  });
  for (const button of document.querySelectorAll(".window-picker button")) {
    button.addEventListener("click", () => {
      session.timelines?.setSpan(Number(button.dataset.window));
      for (const other of document.querySelectorAll(".window-picker button")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      renderTimelines();
    });
  }
  setInterval(() => {
    const now = Date.now();
    for (const c of session.cards.values()) c.tick(now);
  }, 250);

  if (session.authDisabled) {
    banner(AUTH_WARNING, "warning");
    start(null);
    return;
  }
  const token = storedToken();
  if (token) start(token);
  else showLogin();
}

boot();
