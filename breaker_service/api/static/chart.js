// Recent outcome rates: one stacked bar per poll, from the change in the breaker's
// counters since the previous poll (success / failure / timeout / rejected).

import { clock, h, s } from "./dom.js";

export const OUTCOMES = ["success", "failure", "timeout", "rejected"];
const COUNTERS = { success: "successes", failure: "failures", timeout: "timeouts", rejected: "rejections" };
const LABELS = { success: "ok", failure: "failed", timeout: "timed out", rejected: "rejected" };
const SAMPLES = 60;
const WIDTH = 240;
const HEIGHT = 44;

/** A counter that went down was reset: count what it holds now. */
function delta(now, before) {
  return now >= before ? now - before : now;
}

export class RateChart {
  constructor(name) {
    this.name = name;
    this.previous = null;
    this.samples = [];
    this.svg = s("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `recent outcomes of ${name}`,
      "data-testid": `rates-svg-${name}`,
    });
    this.legend = h("div", { class: "legend", "data-testid": `rates-legend-${name}` });
    this.el = h("div", { class: "rates", "data-testid": `rates-${name}` }, this.svg, this.legend);
    this.render();
  }

  /** Record the counters of one poll (at epoch seconds ``at``). */
  push(status, at) {
    const current = Object.fromEntries(OUTCOMES.map((o) => [o, Number(status[COUNTERS[o]] ?? 0)]));
    if (this.previous !== null) {
      const sample = { at };
      for (const o of OUTCOMES) sample[o] = delta(current[o], this.previous[o]);
      this.samples.push(sample);
      if (this.samples.length > SAMPLES) this.samples.shift();
    }
    this.previous = current;
    this.render();
  }

  totals() {
    const totals = Object.fromEntries(OUTCOMES.map((o) => [o, 0]));
    for (const sample of this.samples) for (const o of OUTCOMES) totals[o] += sample[o];
    return totals;
  }

  render() {
    const slot = WIDTH / SAMPLES;
    const peak = Math.max(1, ...this.samples.map((x) => OUTCOMES.reduce((n, o) => n + x[o], 0)));
    const bars = [];
    const offset = SAMPLES - this.samples.length;
    this.samples.forEach((sample, i) => {
      let top = HEIGHT;
      const parts = [];
      for (const o of OUTCOMES) {
        if (!sample[o]) continue;
        const height = (sample[o] / peak) * (HEIGHT - 2);
        top -= height;
        parts.push(
          s("rect", {
            x: ((offset + i) * slot + 0.5).toFixed(2),
            y: top.toFixed(2),
            width: (slot - 1).toFixed(2),
            height: height.toFixed(2),
            class: o,
          }),
        );
      }
      if (parts.length) {
        const text = OUTCOMES.filter((o) => sample[o]).map((o) => `${sample[o]} ${LABELS[o]}`).join(", ");
        bars.push(s("g", {}, s("title", { text: `${clock(sample.at)}: ${text}` }), parts));
      }
    });
    this.svg.replaceChildren(...bars);
    const totals = this.totals();
    const seconds = this.samples.length ? Math.round(this.samples.at(-1).at - this.samples[0].at) + 1 : 0;
    const all = OUTCOMES.reduce((n, o) => n + totals[o], 0);
    this.legend.replaceChildren(
      ...OUTCOMES.map((o) =>
        h(
          "span",
          { "data-outcome": o, "data-count": totals[o] },
          h("i", { class: `swatch ${o}` }),
          `${LABELS[o]} ${totals[o]}${all ? ` (${Math.round((100 * totals[o]) / all)}%)` : ""}`,
        ),
      ),
      h("span", {}, seconds ? `last ${seconds} s` : "collecting…"),
    );
  }
}
