// The console's shell: sign-in (the App Service session when Entra ID sign-in is on, else the
// management key), navigation (#/page?filters), errors. A signed-in person without the
// Connector.Admin role sees only their own page (#/me).
import { ApiError, AuthError, key, session } from "./api.js";
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
const me = lazy("./pages/me.js");

const PAGES = [
  ["overview", "Overview", overview], ["people", "People", people], ["transactions", "Transactions", transactions],
  ["appointments", "Appointments", appointments], ["links", "Links", links], ["unmatched", "Unmatched", unmatched],
  ["rules", "Rules", rules], ["log", "Log", log],
];
// Pages reached from a row, not from the menu: [the menu entry shown as current, title, module],
// loaded when first opened (the first load stays small).
const appointment = lazy("./pages/appointment.js");
const DETAILS = { appointment: ["appointments", "Appointment", appointment], event: ["appointments", "Event", appointment] };
const OWN = ["me", "My settings", me];
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

function signIn(reason, who) {
  key.clear();
  main.dataset.renders = String(generation);
  nav.hidden = true;
  signout.hidden = !(who && who.signedIn);
  const entra = who && who.appServiceAuth && !who.signedIn && who.signInUrl
    ? h("p", {}, h("a", { class: "button primary", href: who.signInUrl }, "Sign in with your work account"),
      " (Microsoft Entra ID; administrators need the Connector.Admin app role). Or use the management key:")
    : null;
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h("form", { class: "signin", onsubmit: async (event) => {
    event.preventDefault();
    key.set(input.value.trim());
    render();
  } },
  h("h1", {}, "Sign in"),
  reason ? message("error", reason) : null,
  entra,
  h("p", {}, "Enter the app's management key: the app setting ", h("strong", {}, "MANAGEMENT_KEY"),
    " (deployed with the template, it is the Key Vault secret ", h("strong", {}, "management-key"),
    "; run locally, it is in local.settings.json). Not the Functions master key: that no longer opens the console. ",
    "The key is kept in this tab only (sessionStorage) and sent in the x-functions-key header."),
  h("label", { for: "key" }, "Management key", input),
  h("p", {}, h("button", { type: "submit", class: "primary" }, "Sign in")));
  show(main, form);
  input.focus();
}

// The pages this visitor may open: every page with the key or the role, their own page when signed
// in through Entra ID (App Service Authentication), nothing before a sign-in.
function pagesFor(who) {
  const admin = Boolean(key.get()) || who.admin;
  if (admin) return who.signedIn ? [...PAGES, OWN] : PAGES;
  return who.signedIn ? [OWN] : [];
}

async function render() {
  const mine = ++generation;
  const who = await session();
  if (mine !== generation) return;
  const pages = pagesFor(who);
  if (!pages.length) return signIn(who.error, who);
  const { name, id, params, unreadable } = route();
  const admin = pages.includes(PAGES[0]);
  const page = (admin && Object.hasOwn(DETAILS, name) && DETAILS[name]) || pages.find(([slug]) => slug === name) || pages[0];
  nav.hidden = false;
  signout.hidden = false;
  show(nav, pages.map(([slug, label]) => h("a", { href: `#/${slug}`, "aria-current": slug === page[0] ? "page" : null }, label)),
    who.signedIn ? h("span", { class: "muted who" }, `${who.name || who.upn}${who.admin ? " · administrator" : ""}`) : null);
  document.title = `${page[1]} · Outlook ⇄ Dime.Scheduler console`;
  const context = { id, params, current: () => mine === generation, go, failed, who };
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
  if (error instanceof AuthError && error.status === 403) {
    key.clear();
    return show(main, message("error", `Signed in, but not as an administrator (${error.message}). `,
      h("a", { href: "#/me" }, "Your own settings"), " are open to you."));
  }
  if (error instanceof AuthError) {
    const who = context && context.who;
    if (who && who.signedIn && !key.get()) {
      return show(main, message("error", `Your sign-in was refused (${error.message}). `,
        h("a", { href: who.signInUrl || "/.auth/login/aad" }, "Sign in again"), "."));
    }
    return signIn("The management key was refused (401 Unauthorized). Enter the management key (MANAGEMENT_KEY) again: it may have been rotated, or mistyped.", who);
  }
  if (context && !context.current()) return;
  const reason = error instanceof ApiError ? error.message : `unexpected error: ${error && error.message}`;
  show(main, message("error", `Could not load this page (${reason}). `,
    h("button", { type: "button", onclick: render }, "Try again")));
  console.error(error);
}

signout.addEventListener("click", async () => {
  key.clear();
  const who = await session();
  if (who.signedIn && who.signOutUrl) { location.href = who.signOutUrl; return; }
  location.hash = "#/overview";
  signIn(undefined, who);
});
window.addEventListener("hashchange", render);
render();
