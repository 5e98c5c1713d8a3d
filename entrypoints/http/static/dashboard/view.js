// Building blocks of the pages: elements, tables, figures and formats.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// columns: [{ title, value: (row) => text, number: bool }]
export function table(columns, rows, empty = "Nothing yet.") {
  if (!rows.length) return el("p", { class: "note", text: empty });
  const head = el("tr", {}, ...columns.map((c) => el("th", { class: c.number ? "number" : "", text: c.title })));
  const body = rows.map((row) =>
    el("tr", {}, ...columns.map((c) => el("td", { class: c.number ? "number" : "", text: show(c.value(row)) }))),
  );
  return el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
}

export function cards(figures) {
  return el(
    "div",
    { class: "cards" },
    ...figures.map(([label, value]) => el("div", { class: "card" }, el("b", { text: show(value) }), el("span", { text: label }))),
  );
}

export function show(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : value.toLocaleString("en", { maximumFractionDigits: 3 });
  return String(value);
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? null : `${(ratio * 100).toFixed(1)} %`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return null;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

export function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" }) : null;
}

export function controls(...children) {
  return el("div", { class: "controls" }, ...children);
}

export function choice(label, options, selected) {
  const select = el("select", { "aria-label": label }, ...options.map((o) => el("option", { value: o, text: o })));
  select.value = selected;
  return select;
}
