// Usage over time, from the rollups (GET /v1/reports/usage): sessions, active hours, video
// minutes and traffic per hour, day, week or month, one of them charted.
import { timeChart } from "../charts.js";
import { get } from "../api.js";
import { choice, controls, el, table } from "../view.js";

const FIGURES = {
  sessions: (b) => b.sessions_started,
  "active hours": (b) => b.active_seconds / 3600,
  "video minutes": (b) => b.video_minutes,
  "traffic GB": (b) => b.traffic_gb,
};
const chosen = { bucket: "hour", figure: "sessions" };

export const page = { id: "usage", title: "Usage over time", render };

async function render(main) {
  const report = await get("/v1/reports/usage", { bucket: chosen.bucket });
  const bucket = choice("bucket", ["hour", "day", "week", "month"], chosen.bucket);
  const figure = choice("figure", Object.keys(FIGURES), chosen.figure);
  const chart = el("div", { class: "chart", id: "usage-chart" });
  for (const [select, name] of [[bucket, "bucket"], [figure, "figure"]]) {
    select.addEventListener("change", () => {
      chosen[name] = select.value;
      render(main);
    });
  }
  const items = report.items;
  main.replaceChildren(
    controls(el("label", { text: "per" }), bucket, el("label", { text: "chart" }), figure),
    chart,
    el("p", { class: "note", text: "As of the last rollup run; hours are UTC, days, weeks and months those of the tenant's time zone." }),
    table(
      [
        { title: chosen.bucket, value: (b) => b.label },
        { title: "sessions", value: (b) => b.sessions_started, number: true },
        { title: "active hours", value: (b) => b.active_seconds / 3600, number: true },
        { title: "video minutes", value: (b) => b.video_minutes, number: true },
        { title: "traffic GB", value: (b) => b.traffic_gb, number: true },
        { title: "events", value: (b) => b.events, number: true },
      ],
      [...items].reverse(),
      "No usage rolled up in this window yet.",
    ),
  );
  const times = items.map((b) => Date.parse(b.start) / 1000);
  timeChart(chart, times, items.map(FIGURES[chosen.figure]), chosen.figure);
}
