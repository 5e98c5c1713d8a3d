// Free trials over the last 30 days of the tenant's time zone (GET /v1/reports/trials).
import { get } from "../api.js";
import { cards, el, percent, when } from "../view.js";

export const page = { id: "trials", title: "Trials", render };

async function render(main) {
  const r = await get("/v1/reports/trials");
  main.replaceChildren(
    el("p", { class: "note", text: `From ${when(r.from)} to ${when(r.to)}.` }),
    cards([
      ["trial subjects", r.trial_subjects],
      ["trial sessions", r.sessions_used],
      ["sessions per subject", r.avg_sessions_per_subject],
      ["subjects who ran out", r.subjects_exhausted],
      ["conversions", r.conversions],
      ["conversion rate", percent(r.conversion_rate)],
    ]),
    el("h2", { text: "Starts refused" }),
    cards([
      ["trial exhausted", r.refused_starts.trial_exhausted],
      ["quota exceeded", r.refused_starts.quota_exceeded],
      ["insufficient credits", r.refused_starts.insufficient_credits],
    ]),
  );
}
