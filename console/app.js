// The console's shell: sign-in with the management key, navigation (#/page?filters), errors.
import { ApiError, AuthError, key } from "./api.js";
import { h, message, show } from "./dom.js";
import * as overview from "./pages/overview.js";

// Every page but the Overview is loaded when first opened: the first load stays small however many
// pages the console grows (tests/unit/test_console_assets.py and the browser's first-load figures).
const lazy = (path) => ({ render: async (...args) => (await import(path)).render(...args) });
const people = lazy("./pages/people.js");
const transactions = lazy("./pages/transactions.js");
const appointments = lazy("./pages/appointments.js");
const links = lazy("./pages/links.js");
const unmatched = lazy("./pages/unmatched.js");
const log = lazy("./pages/log.js");
const rules = lazy("./pages/rules.js");

const PAGES = [
  ["overview", "Overview", overview], ["people", "People", people], ["transactions", "Transactions", transactions],
  ["appointments", "Appointments", appointments], ["links", "Links", links], ["unmatched", "Unmatched", unmatched],
  ["rules", "Rules", rules], ["log", "Log", log],
];
// Pages reached from a row, not from the menu: [the menu entry shown as current, title, module],
// loaded when first opened (the first load stays small).
const appointment = lazy("./pages/appointment.js");
const DETAILS = { appointment: ["appointments", "Appointment", appointment], event: ["appointments", "Event", appointment] };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signout = document.getElementById("signout");
let generation = 0;

// The page, id and filters the address names. A malformed escape (a lone "%") makes
// decodeURIComponent throw URIError: the default page is shown instead, with the address as text.
function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search] = (hash || "overview").split("?");
  const [name, ...rest] = path.split("/");
  try {
    return { name, id: rest.length ? decodeURIComponent(rest.join("/")) : null, params: new URLSearchParams(search || "") };
  } catch (error) {
    if (!(error instanceof URIError)) throw error;
    return { name: PAGES[0][0], id: null, params: new URLSearchParams(), unreadable: hash };
  }
}

export function go(hash) {
  if (location.hash === hash) render(); else location.hash = hash;
}

function signIn(reason) {
  key.clear();
  main.dataset.renders = String(generation);
  nav.hidden = true;
  signout.hidden = true;
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h("form", { class: "signin", onsubmit: async (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    render();
  } },
  h("h1", {}, "Sign in"),
  reason ? message("error", reason) : null,
  h("p", {}, "Enter the app's management key: the master (host) key, from the Function App's ",
    h("strong", {}, "App keys"), " page in the Azure portal. It is kept in this tab only (sessionStorage) and sent in the x-functions-key header."),
  h("label", { for: "key" }, "Management key", input),
  h("p", {}, h("button", { type: "submit", class: "primary" }, "Sign in")));
  show(main, form);
  input.focus();
}

async function render() {
  const mine = ++generation;
  if (!key.get()) return signIn();
  const { name, id, params, unreadable } = route();
  const page = (Object.hasOwn(DETAILS, name) && DETAILS[name]) || PAGES.find(([slug]) => slug === name) || PAGES[0];
  nav.hidden = false;
  signout.hidden = false;
  show(nav, PAGES.map(([slug, label]) => h("a", { href: `#/${slug}`, "aria-current": slug === page[0] ? "page" : null }, label)));
  document.title = `${page[1]} · Outlook ⇄ Dime.Scheduler console`;
  const context = { id, params, current: () => mine === generation, go, failed };
  try {
    await page[2].render(main, context);
    if (unreadable !== undefined && context.current()) {
      main.prepend(message("error", "This address could not be read (a malformed % escape), so the ",
        page[1], " is shown instead: #/", unreadable));
    }
  } catch (error) {
    failed(error, context);
  }
  if (mine === generation) main.dataset.renders = String(mine); // tests wait for this, people never see it
}

function failed(error, context) {
  if (error instanceof AuthError) {
    return signIn("The management key was refused (401 Unauthorized). Enter the master key again: it may have been rotated, or mistyped.");
  }
  if (context && !context.current()) return;
  const reason = error instanceof ApiError ? error.message : `unexpected error: ${error && error.message}`;
  show(main, message("error", `Could not load this page (${reason}). `,
    h("button", { type: "button", onclick: render }, "Try again")));
  console.error(error);
}

signout.addEventListener("click", () => { key.clear(); location.hash = "#/overview"; signIn(); });
window.addEventListener("hashchange", render);
render();
