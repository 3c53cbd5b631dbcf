// Incremental reads of a breaker's audit trail (GET /breakers/{name}/events): the first
// read goes back a window with ``since``; later reads ask only for what came ``after``
// the last id seen, so each poll transfers only new events.

import { epoch } from "./dom.js";

const PAGE = 500;
const PAGES_PER_POLL = 4;

class EventFeed {
  constructor(name, { kind = null, lookback }) {
    this.name = name;
    this.kind = kind;
    this.lookback = lookback;
    this.cursor = 0;
  }

  /** Fetch what is new; returns the new events (oldest first). */
  async pull(api, now) {
    const fresh = [];
    for (let page = 0; page < PAGES_PER_POLL; page += 1) {
      const params = { limit: PAGE, kind: this.kind };
      if (this.cursor) params.after = this.cursor;
      else params.since = (now - this.lookback).toFixed(3);
      const body = await api.get(`breakers/${encodeURIComponent(this.name)}/events`, params);
      const events = body.events ?? [];
      for (const event of events) event.epoch = epoch(event.at);
      fresh.push(...events);
      if (events.length) this.cursor = events.at(-1).id;
      if (body.next_after === null || body.next_after === undefined || !events.length) break;
    }
    return fresh;
  }
}

/** A day of transitions, for the timeline. */
export class TransitionFeed extends EventFeed {
  constructor(name, lookback = 86400) {
    super(name, { kind: "transition", lookback });
    this.transitions = [];
    this.before = null; // the latest transition pruned out of the lookback: the state before it
  }

  async refresh(api, now) {
    this.transitions.push(...(await this.pull(api, now)));
    const horizon = now - this.lookback;
    while (this.transitions.length && this.transitions[0].epoch < horizon) {
      this.before = this.transitions.shift();
    }
    return this.transitions;
  }
}

/** Which instances wrote this breaker's events lately (any kind of event). */
export class ReplicaFeed extends EventFeed {
  constructor(name, lookback = 600) {
    super(name, { lookback });
    this.seen = new Map();
  }

  async refresh(api, now) {
    for (const event of await this.pull(api, now)) {
      if (!event.instance_id) continue;
      const last = this.seen.get(event.instance_id) ?? 0;
      this.seen.set(event.instance_id, Math.max(last, event.epoch));
    }
    const horizon = now - this.lookback;
    return [...this.seen.entries()]
      .filter(([, at]) => at >= horizon)
      .sort((a, b) => a[0].localeCompare(b[0]));
  }
}
