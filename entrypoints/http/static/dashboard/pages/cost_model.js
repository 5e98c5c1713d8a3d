// The cost model (GET /v1/reports/cost-model): traffic and CPU per unit of use, fitted over the
// hourly rollups of the last 30 days, and a plan priced with its arithmetic shown.
import { get } from "../api.js";
import { controls, el, table } from "../view.js";

const plan = { users: "100", hours_per_day: "2", days: "30" };

export const page = { id: "cost-model", title: "Cost model", render };

async function render(main) {
  const r = await get("/v1/reports/cost-model", plan);
  const inputs = Object.keys(plan).map((name) => {
    const input = el("input", { type: "number", min: "0", step: "any", "aria-label": name, name });
    input.value = plan[name];
    return [name, input];
  });
  const form = el("form", {}, ...inputs.flatMap(([name, input]) => [el("label", { text: name.replaceAll("_", " ") }), input]), el("button", { type: "submit", text: "Price" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const [name, input] of inputs) plan[name] = input.value;
    render(main);
  });
  const fits = [
    ["traffic GB per video-minute", r.traffic_gb_per_video_minute],
    ["traffic GB per user-hour", r.traffic_gb_per_user_hour],
    ["CPU % per concurrent user", r.cpu_percent_per_concurrent_user],
  ];
  const p = r.prediction;
  main.replaceChildren(
    el("h2", { text: "Fitted" }),
    table(
      [
        { title: "ratio", value: ([name]) => name },
        { title: "value", value: ([, fit]) => fit.value, number: true },
        { title: "R²", value: ([, fit]) => fit.r_squared, number: true },
        { title: "hours used", value: ([, fit]) => fit.hours_used, number: true },
        { title: "why none", value: ([, fit]) => fit.detail },
      ],
      fits,
    ),
    el("p", { class: "note", text: `${r.hours_with_snapshots} hours with snapshots in the window.` }),
    el("h2", { text: "A plan priced" }),
    controls(form),
    p
      ? el("ol", { class: "arithmetic" }, ...p.arithmetic.map((line) => el("li", { text: line })))
      : el("p", { class: "note", text: "Give users, hours per day and days." }),
  );
}
