// Kiosks over the reports' default window (the last 30 days): a funnel's stages, faults grouped
// by fingerprint, duration percentiles, and sales per currency (never added across currencies).
import { barChart } from "../charts.js";
import { get } from "../api.js";
import { choice, controls, el, percent, table } from "../view.js";

const chosen = { funnel: null };

export const page = { id: "kiosk", title: "Kiosk", render };

async function render(main) {
  const [funnels, errors, performance, sales] = await Promise.all([
    get("/v1/funnels"),
    get("/v1/reports/errors"),
    get("/v1/reports/performance"),
    get("/v1/reports/sales", { group_by: "day" }),
  ]);
  const names = funnels.items.map((f) => f.name);
  const funnel = names.includes(chosen.funnel) ? chosen.funnel : names[0];
  const report = funnel ? await get(`/v1/reports/funnel/${encodeURIComponent(funnel)}`) : null;
  const chart = el("div", { class: "chart", id: "funnel-chart" });
  const picker = choice("funnel", names, funnel);
  picker.addEventListener("change", () => {
    chosen.funnel = picker.value;
    render(main);
  });
  main.replaceChildren(
    el("h2", { text: "Funnel" }),
    funnel ? controls(el("label", { text: "funnel" }), picker, el("span", { class: "note", text: `${report.sessions} sessions` })) : el("p", { class: "note", text: "No funnel is defined (PUT /v1/funnels/{name})." }),
    funnel ? chart : null,
    funnel
      ? table(
          [
            { title: "stage", value: (s) => s.name },
            { title: "reached", value: (s) => s.reached, number: true },
            { title: "from previous", value: (s) => percent(s.conversion_from_previous), number: true },
            { title: "from start", value: (s) => percent(s.conversion_from_start), number: true },
            { title: "dropped here", value: (s) => s.dropped_here, number: true },
            { title: "median s in stage", value: (s) => s.median_seconds_in_stage, number: true },
          ],
          report.stages,
        )
      : null,
    el("h2", { text: "Errors by fingerprint" }),
    table(
      [
        { title: "type", value: (g) => g.type },
        { title: "code", value: (g) => g.code },
        { title: "severity", value: (g) => g.severity },
        { title: "count", value: (g) => g.count, number: true },
        { title: "devices", value: (g) => g.devices, number: true },
        { title: "sales lost", value: (g) => g.sales_lost, number: true },
        { title: "message", value: (g) => g.sample_message },
      ],
      errors.items,
      "No errors reported.",
    ),
    el("h2", { text: "Performance percentiles" }),
    table(
      [
        { title: "type", value: (p) => p.type },
        { title: "version", value: (p) => p.group },
        { title: "count", value: (p) => p.count, number: true },
        { title: "success", value: (p) => percent(p.success_rate), number: true },
        { title: "p50 ms", value: (p) => p.p50_ms, number: true },
        { title: "p95 ms", value: (p) => p.p95_ms, number: true },
        { title: "p99 ms", value: (p) => p.p99_ms, number: true },
        { title: "max ms", value: (p) => p.max_ms, number: true },
      ],
      performance.items,
      "No performance metrics reported.",
    ),
    el("h2", { text: "Sales per day and currency" }),
    table(
      [
        { title: "day", value: (s) => s.group },
        { title: "currency", value: (s) => s.currency },
        { title: "sales", value: (s) => s.count, number: true },
        { title: "gross", value: (s) => s.gross, number: true },
        { title: "net", value: (s) => s.net, number: true },
        { title: "refunded", value: (s) => s.refunded, number: true },
      ],
      [...sales.items].sort((a, b) => a.currency.localeCompare(b.currency) || b.group.localeCompare(a.group)),
      "No sales.",
    ),
  );
  if (report) barChart(chart, report.stages.map((s) => s.name), report.stages.map((s) => s.reached), "sessions reached");
}
