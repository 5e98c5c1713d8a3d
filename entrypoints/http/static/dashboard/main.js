// The dashboard: asks for an admin key, checks it, then shows one page at a time (tabs, named
// in the URL's fragment), refreshing the pages that say how often.
import { get, key } from "./api.js";
import { page as costModel } from "./pages/cost_model.js";
import { page as credits } from "./pages/credits.js";
import { page as kiosk } from "./pages/kiosk.js";
import { page as live } from "./pages/live.js";
import { page as trials } from "./pages/trials.js";
import { page as usage } from "./pages/usage.js";
import { page as watchTime } from "./pages/watch_time.js";

const PAGES = [live, usage, watchTime, credits, trials, kiosk, costModel];
const $ = (id) => document.getElementById(id);
let refresh = null;

function say(message) {
  $("message").textContent = message || "";
  $("message").hidden = !message;
}

function signedIn(yes) {
  $("key-form").hidden = yes;
  $("signed-in").hidden = !yes;
  $("tabs").hidden = !yes;
  if (!yes) $("page").replaceChildren();
}

async function show(page) {
  clearTimeout(refresh);
  for (const tab of $("tabs").children) tab.setAttribute("aria-selected", String(tab.dataset.page === page.id));
  try {
    await page.render($("page"));
    say(null);
  } catch (error) {
    say(error.message);
    if (error.status === 401 || error.status === 403) {
      key.forget();
      signedIn(false);
      return;
    }
  }
  if (page.refreshSeconds && current() === page) refresh = setTimeout(() => show(page), page.refreshSeconds * 1000);
}

function current() {
  return PAGES.find((p) => `#${p.id}` === location.hash) || PAGES[0];
}

// An admin-only read: 401 for a key the service does not know, 403 for an ingest or app key.
async function open(candidate) {
  try {
    await get("/v1/settings", {}, candidate);
  } catch (error) {
    say(error.message);
    return;
  }
  key.set(candidate);
  signedIn(true);
  show(current());
}

$("tabs").append(
  ...PAGES.map((page) => {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.textContent = page.title;
    tab.dataset.page = page.id;
    tab.setAttribute("role", "tab");
    tab.addEventListener("click", () => {
      location.hash = page.id;
    });
    return tab;
  }),
);
addEventListener("hashchange", () => key.get() && show(current()));
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  open($("key").value.trim());
  $("key").value = "";
});
$("forget").addEventListener("click", () => {
  clearTimeout(refresh);
  key.forget();
  signedIn(false);
  say(null);
});

if (key.get()) open(key.get());
