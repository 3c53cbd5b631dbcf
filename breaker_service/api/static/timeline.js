// The transition timeline: one track per provider over the last hour or day, coloured by
// state, with a tick per transition (reason and actor on hover, details on click).

import { ago, clock, duration, h, stamp, stateLabel } from "./dom.js";

const AXES = {
  3600: ["−60 min", "−45 min", "−30 min", "−15 min", "now"],
  86400: ["−24 h", "−18 h", "−12 h", "−6 h", "now"],
};

/** Who made the transition: an operator's token subject, or the breaker itself. */
function actorOf(event) {
  return event.actor || "automatic (the breaker)";
}

function describe(event) {
  return (
    `${stateLabel(event.from_state)} → ${stateLabel(event.to_state)} at ${stamp(event.epoch)}\n` +
    `reason: ${event.reason ?? "—"}\nactor: ${actorOf(event)}\ninstance: ${event.instance_id ?? "—"}`
  );
}

function percent(at, start, span) {
  return Math.min(100, Math.max(0, ((at - start) / span) * 100));
}

class TimelineRow {
  constructor(name, onSelect) {
    this.name = name;
    this.ticks = new Map();
    this.onSelect = onSelect;
    this.count = h("div", { class: "meta", "data-testid": `timeline-count-${name}` });
    this.track = h("div", { class: "timeline-track", "data-testid": `timeline-track-${name}` });
    this.el = h(
      "div",
      { class: "timeline-row", "data-testid": `timeline-${name}`, "data-name": name },
      h("div", {}, h("div", { class: "timeline-name" }, name), this.count),
      this.track,
    );
  }

  render(transitions, before, currentState, now, span) {
    const start = now - span;
    const inWindow = transitions.filter((t) => t.epoch >= start && t.epoch <= now + 5);
    const earlier = transitions.filter((t) => t.epoch < start).at(-1) ?? before;
    let state = earlier ? earlier.to_state : (inWindow[0]?.from_state ?? currentState);
    let from = start;
    const segments = [];
    for (const t of inWindow) {
      segments.push([from, t.epoch, state]);
      from = t.epoch;
      state = t.to_state;
    }
    segments.push([from, now, state]);

    const nodes = segments
      .filter(([a, b]) => b > a)
      .map(([a, b, st]) => {
        const seg = h("div", {
          class: "segment",
          "data-state": st,
          title: `${stateLabel(st)} for ${duration(b - a)}`,
        });
        seg.style.left = `${percent(a, start, span)}%`;
        seg.style.width = `${percent(b, start, span) - percent(a, start, span)}%`;
        return seg;
      });

    const keep = new Set();
    for (const t of inWindow) {
      keep.add(t.id);
      let tick = this.ticks.get(t.id);
      if (!tick) {
        tick = h("button", {
          type: "button",
          class: "tick",
          "data-testid": "transition",
          "data-id": t.id,
          "data-from": t.from_state,
          "data-to": t.to_state,
          "data-actor": t.actor ?? "",
          "data-reason": t.reason ?? "",
          title: describe(t),
          "aria-label": `${this.name}: ${stateLabel(t.from_state)} to ${stateLabel(t.to_state)}`,
          onclick: () => this.onSelect(this.name, t),
        });
        this.ticks.set(t.id, tick);
      }
      tick.style.left = `${Math.min(99.6, percent(t.epoch, start, span))}%`;
    }
    for (const [id, tick] of this.ticks) {
      if (!keep.has(id)) {
        tick.remove();
        this.ticks.delete(id);
      }
    }
    this.track.replaceChildren(...nodes, ...inWindow.map((t) => this.ticks.get(t.id)));
    this.count.textContent = `${inWindow.length} transition${inWindow.length === 1 ? "" : "s"}`;
  }
}

export class Timelines {
  constructor(container, detail) {
    this.container = container;
    this.detail = detail;
    this.span = 3600;
    this.rows = new Map();
    this.axis = h("div", { class: "axis" });
    this.container.append(h("div", { class: "timeline-axis" }, h("div"), this.axis));
    this.setSpan(3600);
  }

  setSpan(seconds) {
    this.span = seconds;
    this.axis.replaceChildren(...AXES[seconds].map((label) => h("span", {}, label)));
  }

  render(name, feed, currentState, now) {
    let row = this.rows.get(name);
    if (!row) {
      row = new TimelineRow(name, (n, t) => this.select(n, t));
      this.rows.set(name, row);
      this.container.insertBefore(row.el, this.container.lastChild);
    }
    row.render(feed.transitions, feed.before, currentState, now, this.span);
  }

  /** The latest transitions of every provider in the window, newest first. */
  renderLog(tbody, feeds, now, shown = 8) {
    const start = now - this.span;
    const rows = [];
    for (const [name, feed] of feeds) {
      for (const t of feed.transitions) if (t.epoch >= start) rows.push([name, t]);
    }
    rows.sort((a, b) => b[1].epoch - a[1].epoch || b[1].id - a[1].id);
    if (!rows.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "no transitions in this window")));
      return;
    }
    tbody.replaceChildren(
      ...rows.slice(0, shown).map(([name, t]) =>
        h(
          "tr",
          { "data-testid": "transition-row", "data-provider": name, "data-to": t.to_state, "data-id": t.id },
          h("td", { title: stamp(t.epoch) }, clock(t.epoch)),
          h("td", {}, name),
          h(
            "td",
            {},
            h("span", { class: "state", "data-state": t.from_state }, stateLabel(t.from_state)),
            " → ",
            h("span", { class: "state", "data-state": t.to_state }, stateLabel(t.to_state)),
          ),
          h("td", { class: "reason" }, t.reason ?? "—"),
          h("td", {}, actorOf(t)),
          h("td", {}, t.instance_id ?? "—"),
        ),
      ),
    );
  }

  select(name, event) {
    this.detail.hidden = false;
    this.detail.dataset.id = event.id;
    this.detail.replaceChildren(
      h("strong", {}, `${name}: ${stateLabel(event.from_state)} → ${stateLabel(event.to_state)}`),
      ` at ${stamp(event.epoch)} (${ago(event.epoch)})`,
      h("br"),
      "reason: ",
      h("span", { "data-testid": "detail-reason" }, event.reason ?? "—"),
      " · actor: ",
      h("span", { "data-testid": "detail-actor" }, actorOf(event)),
      ` · instance: ${event.instance_id ?? "—"} · event #${event.id}`,
    );
  }
}
