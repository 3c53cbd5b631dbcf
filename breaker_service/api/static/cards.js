// One card per breaker: state, counters, next probe (counted down here between polls),
// scope, replicas seen in recent events, outcome rates, and the admin actions.

import { RateChart } from "./chart.js";
import { ago, duration, h, stateLabel } from "./dom.js";

const COUNTERS = [
  ["successes", "ok"],
  ["failures", "failed"],
  ["timeouts", "timeouts"],
  ["rejections", "rejected"],
  ["ignored", "ignored"],
];

const ACTIONS = {
  "force-open": { label: "Force open", placeholder: "Why force it open?", done: "forced open", style: "danger" },
  reset: { label: "Reset", placeholder: "Why reset it?", done: "reset to closed", style: "primary" },
};

export class BreakerCard {
  /**
   * @param {string} name
   * @param {{admin: boolean, act: (name: string, action: string, reason: string) => Promise<object>}} options
   */
  constructor(name, { admin, act }) {
    this.name = name;
    this.act = act;
    this.status = null;
    this.deadline = null; // epoch ms of the next probe, while open
    this.action = null;
    const id = (what) => `${what}-${name}`;

    this.badge = h("span", { class: "state", "data-testid": id("state") });
    this.meta = h("div", { class: "meta", "data-testid": id("meta") });
    this.counters = Object.fromEntries(COUNTERS.map(([key]) => [key, h("b", { "data-testid": id(key) }, "0")]));
    this.probe = h("div", { class: "probe", "data-testid": id("probe") });
    this.extra = h("div", { class: "meta", "data-testid": id("detail") });
    this.replicas = h("div", { class: "replicas", "data-testid": id("replicas") });
    this.provider = h("div", { class: "meta", "data-testid": id("provider") });
    this.chart = new RateChart(name);
    this.result = h("div", { class: "admin-result", "data-testid": id("admin-result"), role: "status" });

    this.reason = h("input", {
      type: "text",
      name: "reason",
      maxlength: 500,
      required: true,
      "data-testid": id("reason"),
      "aria-label": `reason for ${name}`,
    });
    this.confirm = h("button", { type: "submit", class: "danger", "data-testid": id("confirm") }, "Confirm");
    this.form = h(
      "form",
      { class: "admin-form", "data-testid": id("admin-form"), hidden: true, onsubmit: (e) => this.submit(e) },
      this.reason,
      this.confirm,
      h("button", { type: "button", "data-testid": id("cancel"), onclick: () => this.closeForm() }, "Cancel"),
    );
    const buttons = admin
      ? h(
          "div",
          { class: "admin" },
          h(
            "button",
            { type: "button", class: "danger", "data-testid": id("force-open"), onclick: () => this.openForm("force-open") },
            "Force open…",
          ),
          h(
            "button",
            { type: "button", class: "primary", "data-testid": id("reset"), onclick: () => this.openForm("reset") },
            "Reset…",
          ),
        )
      : null;

    this.el = h(
      "article",
      { class: "card", "data-testid": id("card"), id: id("card"), "data-name": name },
      h("div", { class: "card-head" }, h("h3", {}, name), this.badge),
      this.meta,
      h(
        "div",
        { class: "counters" },
        COUNTERS.map(([key, label]) => h("div", { class: "counter" }, this.counters[key], h("span", {}, label))),
      ),
      this.probe,
      this.extra,
      this.replicas,
      this.provider,
      this.chart.el,
      buttons,
      admin ? this.form : null,
      this.result,
    );
  }

  /** A new status from ``GET /breakers`` (received at epoch ms ``receivedAt``). */
  update(status, receivedAt) {
    this.status = status;
    const state = status.state;
    this.el.dataset.state = state;
    this.el.dataset.version = status.version;
    this.badge.dataset.state = state;
    this.badge.textContent = stateLabel(state);
    for (const [key] of COUNTERS) this.counters[key].textContent = String(status[key] ?? 0);
    this.deadline = state === "open" ? receivedAt + Number(status.retry_after ?? 0) * 1000 : null;
    const last = status.last_transition;
    this.meta.replaceChildren(
      h("span", { "data-testid": `scope-${this.name}` }, `scope: ${status.scope ?? "instance"}`),
      ` · v${status.version}`,
      last
        ? h(
            "span",
            { title: `${stateLabel(last.from_state)} → ${stateLabel(last.to_state)} by ${last.actor || "the breaker"}: ${last.reason}` },
            ` · ${stateLabel(last.to_state)} ${ago(last.at)} (${last.reason})`,
          )
        : " · no transition yet",
    );
    const parts = [`${status.consecutive_failures} consecutive failure(s)`];
    if (state === "half_open") parts.push(`${status.half_open_successes ?? 0} trial success(es)`);
    if (status.open_timeout) parts.push(`cooldown ${duration(status.open_timeout)}`);
    this.extra.textContent = parts.join(" · ");
    this.chart.push(status, receivedAt / 1000);
    this.tick(receivedAt);
  }

  /** Count the probe down between polls. */
  tick(now = Date.now()) {
    const status = this.status;
    if (!status) return;
    let text;
    switch (status.state) {
      case "open": {
        const left = Math.max(0, (this.deadline - now) / 1000);
        text = left > 0 ? `next probe in ${duration(Math.ceil(left))}` : "probe allowed now (on the next call)";
        this.probe.dataset.seconds = String(Math.ceil(left));
        break;
      }
      case "half_open":
        text = `probing: ${status.trials_in_flight} trial call(s) in flight`;
        break;
      case "forced_open":
        text = "forced open: no probes until reset";
        break;
      case "disabled":
        text = "breaker disabled: calls pass unguarded";
        break;
      default:
        text = "calls flow normally";
    }
    if (status.state !== "open") delete this.probe.dataset.seconds;
    this.probe.textContent = text;
  }

  /** The instance ids seen in this breaker's recent events: [[id, lastSeenEpoch], ...]. */
  setReplicas(seen, windowSeconds) {
    const minutes = Math.round(windowSeconds / 60);
    this.replicas.replaceChildren(
      `replicas (last ${minutes} min): `,
      ...(seen.length
        ? seen.map(([instance, at]) =>
            h("span", { class: "replica", "data-instance": instance, title: `last event ${ago(at)}` }, instance),
          )
        : [h("span", { class: "empty" }, "no events")]),
    );
    this.replicas.dataset.instances = seen.map(([instance]) => instance).join(" ");
  }

  setProvider(provider) {
    if (!provider) {
      this.provider.textContent = "";
      return;
    }
    const parts = [provider.available ? "provider configured" : `provider unavailable: ${provider.reason}`];
    if (!provider.in_order) parts.push("not in UPLOAD_PROVIDER_ORDER");
    const files = provider.files;
    if (files && files.count !== null && files.count !== undefined) {
      parts.push(files.limit ? `files ${files.count}/${files.limit}` : `files ${files.count}`);
    } else if (files && files.limit) {
      parts.push(`file limit ${files.limit}`);
    }
    if (files && files.quota_full) parts.push("FILE QUOTA FULL");
    this.provider.textContent = parts.join(" · ");
  }

  openForm(action) {
    this.action = action;
    const spec = ACTIONS[action];
    this.form.dataset.action = action;
    this.reason.placeholder = spec.placeholder;
    this.confirm.textContent = `${spec.label} ${this.name}`;
    this.confirm.className = spec.style;
    this.form.hidden = false;
    this.result.textContent = "";
    this.reason.focus();
  }

  closeForm() {
    this.form.hidden = true;
    this.reason.value = "";
    this.action = null;
  }

  async submit(event) {
    event.preventDefault();
    const reason = this.reason.value.trim();
    const action = this.action;
    if (!reason || !action) return;
    this.confirm.disabled = true;
    try {
      await this.act(this.name, action, reason);
      this.result.className = "admin-result";
      this.result.textContent = `${ACTIONS[action].done}: “${reason}”`;
      this.closeForm();
    } catch (error) {
      this.result.className = "admin-result error";
      this.result.textContent = `${ACTIONS[action].label} failed: ${error.message}`;
    } finally {
      this.confirm.disabled = false;
    }
  }
}
