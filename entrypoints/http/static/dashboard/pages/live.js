// Live now: the sessions active at this moment, per kind and resource, refreshed every few
// seconds (GET /v1/sessions?status=active).
import { everything, get } from "../api.js";
import { cards, duration, el, table, when } from "../view.js";

export const page = { id: "live", title: "Live now", refreshSeconds: 5, render };

async function render(main) {
  const [active, total] = await Promise.all([everything("/v1/sessions", { status: "active" }), get("/v1/reports/active")]);
  const groups = new Map();
  for (const s of active) {
    const name = `${s.kind}\u0000${s.resource_id}`;
    const group = groups.get(name) || { kind: s.kind, resource_id: s.resource_id, active: 0, since: s.started_at };
    group.active += 1;
    if (s.started_at < group.since) group.since = s.started_at;
    groups.set(name, group);
  }
  const rows = [...groups.values()].sort((a, b) => b.active - a.active || a.resource_id.localeCompare(b.resource_id));
  const now = Date.now();
  main.replaceChildren(
    cards([
      ["sessions active now", total.active],
      ["kinds", new Set(active.map((s) => s.kind)).size],
      ["resources", groups.size],
    ]),
    el("h2", { text: "Active per kind and resource" }),
    table(
      [
        { title: "kind", value: (r) => r.kind },
        { title: "resource", value: (r) => r.resource_id },
        { title: "active", value: (r) => r.active, number: true },
        { title: "oldest started", value: (r) => when(r.since) },
      ],
      rows,
      "No session is active.",
    ),
    el("h2", { text: "Active sessions, newest first" }),
    table(
      [
        { title: "kind", value: (s) => s.kind },
        { title: "resource", value: (s) => s.resource_id },
        { title: "who", value: (s) => s.subject_id || "anonymous" },
        { title: "started", value: (s) => when(s.started_at) },
        { title: "running", value: (s) => duration((now - Date.parse(s.started_at)) / 1000), number: true },
        { title: "last seen", value: (s) => when(s.last_seen_at) },
      ],
      active.slice(0, 100),
      "No session is active.",
    ),
    el("p", { class: "note", text: `Refreshed every ${page.refreshSeconds} s; last at ${new Date().toLocaleTimeString("en-GB")}.` }),
  );
}
