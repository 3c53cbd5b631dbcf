// Recent uploads and the tracking outbox.

import { bytes, clock, duration, epoch, h } from "./dom.js";

export function renderUploads(tbody, uploads, error = null) {
  if (error) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "error" }, `cannot read uploads: ${error.message}`)));
    return;
  }
  if (!uploads.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "no uploads yet")));
    return;
  }
  tbody.replaceChildren(
    ...uploads.map((u) => {
      const tried = u.providers_tried ?? [];
      const fallback = u.fallback ? `yes (${tried.join(" → ")})` : "no";
      return h(
        "tr",
        {
          class: u.fallback ? "fallback" : null,
          "data-testid": "upload-row",
          "data-provider": u.provider,
          "data-fallback": u.fallback ? "true" : "false",
        },
        h("td", { title: u.uploaded_at }, clock(epoch(u.uploaded_at))),
        h("td", { class: "file", title: `${u.filename}\nsha256 ${u.sha256}` }, u.filename),
        h("td", {}, u.provider),
        h("td", { class: "num", title: `${u.bytes} bytes` }, bytes(u.bytes)),
        h("td", { class: "num" }, u.attempts),
        h("td", { class: "fallback-cell" }, fallback),
        h("td", { title: u.tracking_error ?? "", "data-tracking": u.tracking ?? "off" }, u.tracking ?? "off"),
      );
    }),
  );
}

export function renderOutbox(dl, outbox) {
  if (outbox.error) {
    dl.dataset.enabled = "unknown";
    dl.replaceChildren(h("dt", {}, "outbox"), h("dd", { class: "error" }, `cannot read: ${outbox.error.message}`));
    return;
  }
  if (!outbox.enabled) {
    dl.dataset.enabled = "false";
    dl.replaceChildren(
      h("dt", {}, "Supabase"),
      h("dd", { "data-testid": "outbox-off" }, "tracking off (SUPABASE_URL / SUPABASE_SERVICE_KEY unset)"),
    );
    return;
  }
  dl.dataset.enabled = "true";
  const age = outbox.oldest_pending_age_seconds;
  dl.replaceChildren(
    h("dt", {}, "pending"),
    h("dd", { "data-testid": "outbox-pending" }, outbox.pending),
    h("dt", {}, "delivered"),
    h("dd", { "data-testid": "outbox-delivered" }, outbox.delivered),
    h("dt", {}, "failed"),
    h("dd", { "data-testid": "outbox-failed" }, outbox.failed),
    h("dt", {}, "oldest pending"),
    h("dd", {}, age === null || age === undefined ? "—" : duration(age)),
    h("dt", {}, "last error"),
    h("dd", {}, outbox.last_error ?? "—"),
  );
}
