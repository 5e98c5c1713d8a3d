// Watch time per resource: the resources report (GET /v1/reports/resources), and per viewer of
// the resource picked (GET /v1/reports/watch-time).
import { get } from "../api.js";
import { controls, duration, el, table } from "../view.js";

const chosen = { resource: null };

export const page = { id: "watch-time", title: "Watch time", render };

async function render(main) {
  const resources = (await get("/v1/reports/resources")).items;
  const picker = el("select", { "aria-label": "resource" }, ...resources.map((r) => el("option", { value: r.resource_id, text: r.resource_id })));
  if (chosen.resource) picker.value = chosen.resource;
  picker.addEventListener("change", () => {
    chosen.resource = picker.value;
    render(main);
  });
  const viewers = picker.value ? (await get("/v1/reports/watch-time", { resource_id: picker.value })).items : [];
  main.replaceChildren(
    el("h2", { text: "Resources" }),
    table(
      [
        { title: "resource", value: (r) => r.resource_id },
        { title: "sessions", value: (r) => r.total_sessions, number: true },
        { title: "unique visitors", value: (r) => r.unique_visitors, number: true },
        { title: "ended", value: (r) => r.ended_sessions, number: true },
        { title: "total watched", value: (r) => duration(r.total_duration_seconds), number: true },
        { title: "average", value: (r) => duration(r.avg_duration_seconds), number: true },
        { title: "active now", value: (r) => r.active_now, number: true },
        { title: "peak", value: (r) => r.peak_concurrency, number: true },
      ],
      resources,
      "No session has started yet.",
    ),
    el("h2", { text: "Watch time per viewer" }),
    controls(el("label", { text: "resource" }), picker),
    table(
      [
        { title: "viewer", value: (v) => v.subject_id },
        { title: "visits", value: (v) => v.visit_count, number: true },
        { title: "total", value: (v) => duration(v.total_seconds), number: true },
        { title: "average", value: (v) => duration(v.avg_seconds), number: true },
        { title: "watched (overlaps once)", value: (v) => duration(v.unique_seconds), number: true },
      ],
      viewers,
      "No viewer with a subject has ended a session of this resource.",
    ),
  );
}
