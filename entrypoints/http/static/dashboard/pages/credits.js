// Credits: the balances of the subjects asked for (and of those the alerts name), the latest
// entries of their ledgers, and the tenant's alerts. The API has no list of every account, so
// the operator names them.
import { everything, get } from "../api.js";
import { controls, el, table, when } from "../view.js";

const LATEST = 20;
const chosen = { subjects: "" };

export const page = { id: "credits", title: "Credits", render };

async function render(main) {
  const alerts = (await get("/v1/alerts", { limit: 50 })).items;
  const named = chosen.subjects.split(",").map((s) => s.trim()).filter(Boolean);
  const subjects = [...new Set([...named, ...alerts.map((a) => a.subject_id)])];
  const balances = await Promise.all(subjects.map((s) => get(`/v1/accounts/${encodeURIComponent(s)}/credits`)));
  // Ledgers are oldest first: their last entries are the latest.
  const ledgers = await Promise.all(subjects.map((s) => everything(`/v1/accounts/${encodeURIComponent(s)}/credits/ledger`)));
  const latest = ledgers
    .flatMap((entries, i) => entries.map((e) => ({ ...e, subject_id: subjects[i] })))
    .sort((a, b) => b.created_at.localeCompare(a.created_at))
    .slice(0, LATEST);
  const input = el("input", { type: "text", placeholder: "subject ids, comma-separated", "aria-label": "subjects" });
  input.value = chosen.subjects;
  const form = el("form", {}, input, el("button", { type: "submit", text: "Show" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    chosen.subjects = input.value;
    render(main);
  });
  main.replaceChildren(
    controls(form),
    el("h2", { text: "Balances" }),
    table(
      [
        { title: "subject", value: (b) => b.subject_id },
        { title: "balance", value: (b) => b.balance, number: true },
        { title: "granted", value: (b) => b.granted, number: true },
        { title: "consumed", value: (b) => b.consumed, number: true },
      ],
      balances,
      "Name subjects above; subjects with alerts are shown by themselves.",
    ),
    el("h2", { text: `Latest ${LATEST} ledger entries` }),
    table(
      [
        { title: "when", value: (e) => when(e.created_at) },
        { title: "subject", value: (e) => e.subject_id },
        { title: "kind", value: (e) => e.kind },
        { title: "amount", value: (e) => e.amount, number: true },
        { title: "session", value: (e) => e.session_id },
        { title: "reason", value: (e) => e.reason },
      ],
      latest,
      "No entries.",
    ),
    el("h2", { text: "Alerts" }),
    table(
      [
        { title: "when", value: (a) => when(a.created_at) },
        { title: "kind", value: (a) => a.kind },
        { title: "subject", value: (a) => a.subject_id },
        { title: "detail", value: (a) => a.detail },
      ],
      alerts,
      "No alerts.",
    ),
  );
}
