// Transactions: filter, sort, page, select, retry/archive (one, a selection, or all matching a
// filter, with the count confirmed first); and one transaction's detail.
import { api, listAll, part, query } from "../api.js";
import { confirmDialog, h, labelCells, link, matches, message, person, show, subject, time } from "../dom.js";

const FILTERS = ["status", "direction", "mailbox", "errorCode", "since", "until"];
const STATUSES = ["", "failed", "pending", "succeeded", "skipped", "archived"];
const DIRECTIONS = ["", "outlook-to-dime", "dime-to-outlook"];
const PAGE = 50;
let flash = null; // the outcome of a bulk action, shown above the reloaded list
const LIMIT = 1000;
const COLUMNS = [
  ["createdAt", "Created"], ["status", "Status"], ["direction", "Direction"], ["operation", "Operation"],
  ["personName", "Person"], ["subject", "Subject"], ["start", "Starts"],
  ["errorCode", "Error code"], ["attempts", "Attempts"], ["message", "Message"],
];

// The appointment's own page (both directions, its timeline), from any row that names it.
export function appointmentHref(row) {
  if (!row.appointmentGuid) return null;
  const mailbox = row.mailboxId && row.mailboxId !== "dime-scheduler" ? row.mailboxId : null;
  return `#/appointment/${part(row.appointmentGuid)}${query({ mailbox })}`;
}

export function filterOf(params) {
  const filter = {};
  for (const name of FILTERS) if (params.get(name)) filter[name] = params.get(name);
  if (!filter.since && !filter.until && filter.status !== "failed") {
    filter.since = new Date(Date.now() - 7 * 86400 * 1000).toISOString().slice(0, 10);
  }
  return filter;
}

function localInput(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return "";
  return new Date(moment.getTime() - moment.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function select(id, label, options, value) {
  return h("label", { for: id }, label,
    h("select", { id, name: id }, options.map((o) => h("option", { value: o, selected: o === (value || "") ? true : null }, o || "any"))));
}

function filterForm(filter, ctx) {
  const text = (id, label, value, extra = {}) => h("label", { for: id }, label, h("input", { id, name: id, value: value || "", ...extra }));
  return h("form", { class: "filters", "aria-label": "Filter transactions", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const next = {};
    for (const name of FILTERS) {
      let value = String(data.get(name) || "").trim();
      if (value && (name === "since" || name === "until")) value = new Date(value).toISOString();
      if (value) next[name] = value;
    }
    const search = String(data.get("q") || "").trim();
    if (search) next.q = search;
    ctx.go(`#/transactions${query(next)}`);
  } },
  text("q", "Search person, subject, date", ctx.params.get("q"), { type: "search", size: 24, placeholder: "e.g. Jane 24 Nov" }),
  select("status", "Status", STATUSES, filter.status),
  select("direction", "Direction", DIRECTIONS, filter.direction),
  text("mailbox", "Mailbox (object id)", filter.mailbox, { size: 20 }),
  text("errorCode", "Error code", filter.errorCode, { size: 18, placeholder: "e.g. DIME_UNAVAILABLE" }),
  text("since", "From (your time)", localInput(filter.since), { type: "datetime-local" }),
  text("until", "Until (your time)", localInput(filter.until), { type: "datetime-local" }),
  h("button", { type: "submit", class: "primary" }, "Apply"),
  h("button", { type: "button", onclick: () => ctx.go("#/transactions") }, "Clear"));
}

export function statusCell(value) {
  return h("span", { class: `status-${value}` }, value);
}

// "All matching": retry works on failed (or archived) rows, archive on failed ones, whatever status
// the list shows; the count is confirmed first, then watched until nothing matches any more.
async function bulkAll(action, filter, ctx, status) {
  const keep = action === "retry" && filter.status === "archived";
  const target = { ...filter, status: keep ? "archived" : "failed" };
  const { count } = await api("transactions/count", { params: target });
  const verb = action === "retry" ? "Retry" : "Archive";
  if (!count) { show(status, message("empty", `No ${target.status} transaction matches this filter: nothing to ${action}.`)); return; }
  const what = `${count} ${target.status} transaction${count === 1 ? "" : "s"} matching this filter`;
  if (!(await confirmDialog(`${verb} all ${what}?`, `${verb} ${count}`))) return;
  show(status, message("status", `${action === "retry" ? "Retrying" : "Archiving"} ${what}…`));
  await api(`transactions/${action}`, { method: "POST", body: { all: true, filter: target } });
  // The API may finish the work later (202 for large sets): watch the count.
  let remaining = count;
  for (let round = 0; round < 60 && ctx.current(); round++) {
    remaining = (await api("transactions/count", { params: target })).count;
    flash = `${remaining} ${target.status} transaction${remaining === 1 ? "" : "s"} still match${remaining === 1 ? "es" : ""} this filter.`;
    show(status, message(remaining ? "status" : "ok", flash));
    if (!remaining) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  if (remaining && ctx.current()) {
    flash += " Those that failed again show their new error; the rest may still be in progress: reload in a minute.";
  }
}

export async function render(main, ctx) {
  if (ctx.id) return renderDetail(main, ctx);
  const filter = filterOf(ctx.params);
  const sort = ctx.params.get("sort") || "createdAt";
  const descending = ctx.params.get("order") !== "asc";
  const page = Math.max(0, Number(ctx.params.get("page") || 0) | 0);
  const search = ctx.params.get("q") || "";
  const fetched = await listAll("transactions", filter, LIMIT);
  if (!ctx.current()) return;
  // The search runs here, over the rows already fetched: the table service has no "contains".
  const items = fetched.items.filter((t) => matches(t, search));
  const capped = fetched.capped;
  items.sort((a, b) => {
    const x = a[sort] ?? "", y = b[sort] ?? "";
    return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
  });
  const selected = new Set();
  const status = h("div", { "aria-live": "polite" }, flash ? message("ok", flash) : null);
  flash = null;
  const shown = items.slice(page * PAGE, (page + 1) * PAGE);
  const hashWith = (changes) => `#/transactions${query({ ...Object.fromEntries(ctx.params), ...changes })}`;
  const count = h("span", { class: "muted" }, "0 selected");
  const refreshCount = () => { count.textContent = `${selected.size} selected`; };
  const onSelected = async (action) => {
    if (!selected.size) { show(status, message("empty", "Select transactions first (the boxes in the first column).")); return; }
    if (!(await confirmDialog(`${action === "retry" ? "Retry" : "Archive"} ${selected.size} selected transaction(s)?`, action === "retry" ? "Retry" : "Archive"))) return;
    const answer = await api(`transactions/${action}`, { method: "POST", body: { ids: [...selected] } });
    flash = `${action === "retry" ? "Retried" : "Archived"} ${answer.matched ?? selected.size} transaction(s).`;
    ctx.go(location.hash);
  };
  const guard = (fn) => (event) => fn(event).catch((error) => ctx.failed(error, ctx));
  const header = ([field, label]) => h("th", { scope: "col", "aria-sort": field === sort ? (descending ? "descending" : "ascending") : null },
    h("button", { type: "button", onclick: () => ctx.go(hashWith({ sort: field, order: field === sort && descending ? "asc" : "desc", page: "" })) },
      label, field === sort ? (descending ? " ▼" : " ▲") : ""));
  const toggle = (id, on) => { if (on) selected.add(id); else selected.delete(id); refreshCount(); };
  const boxes = shown.map((t) => h("input", { type: "checkbox", "aria-label": `Select transaction ${t.id}`, onchange: (e) => toggle(t.id, e.target.checked) }));
  const everyBox = h("input", { type: "checkbox", "aria-label": "Select every transaction on this page", onchange: (e) => {
    for (const [i, box] of boxes.entries()) { box.checked = e.target.checked; toggle(shown[i].id, e.target.checked); }
  } });
  const rows = shown.map((t, i) => h("tr", {},
    h("td", {}, boxes[i]),
    h("td", {}, link(`#/transactions/${part(t.id)}`, time(t.createdAt))),
    h("td", {}, statusCell(t.status)), h("td", {}, t.direction), h("td", {}, t.operation),
    h("td", { class: "wrap" }, person(t)),
    h("td", { class: "wrap" }, appointmentHref(t) ? link(appointmentHref(t), subject(t.subject)) : subject(t.subject)),
    h("td", {}, time(t.start)),
    h("td", {}, t.errorCode || ""), h("td", {}, String(t.attempts ?? "")),
    h("td", { class: "wrap" }, t.message || "")));
  show(main,
    h("h1", {}, "Transactions"),
    filterForm(filter, ctx),
    h("div", { class: "bar" },
      h("button", { type: "button", onclick: guard(() => onSelected("retry")) }, "Retry selected"),
      h("button", { type: "button", onclick: guard(() => onSelected("archive")) }, "Archive selected"),
      count,
      h("button", { type: "button", onclick: guard(() => bulkAll("retry", filter, ctx, status).then(() => ctx.go(location.hash))) }, "Retry all matching…"),
      h("button", { type: "button", class: "danger", onclick: guard(() => bulkAll("archive", filter, ctx, status).then(() => ctx.go(location.hash))) }, "Archive all matching…")),
    status,
    search ? message("status", `Only the rows of this filter whose person, subject or date contain “${search}”: ${items.length} of ${fetched.items.length}. “All matching” acts on the filter, not the search. `,
      link(`#/transactions${query({ ...filter, q: "" })}`, "Clear the search")) : null,
    capped ? message("status", `Showing the first ${LIMIT} matching transactions: narrow the filter (a shorter date range or a mailbox) to see the rest.`) : null,
    items.length
      ? h("div", { class: "scroll" }, labelCells(h("table", { "aria-label": "Transactions", class: "stack" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, everyBox), COLUMNS.map(header))),
        h("tbody", {}, rows))))
      : message("empty", "No transaction matches this filter. Widen the date range or clear the filter."),
    h("div", { class: "bar" },
      page > 0 ? link(hashWith({ page: String(page - 1) }), "← Newer page") : null,
      h("span", { class: "muted" }, `${items.length ? page * PAGE + 1 : 0}–${page * PAGE + shown.length} of ${items.length}${capped ? "+" : ""}`),
      (page + 1) * PAGE < items.length ? link(hashWith({ page: String(page + 1) }), "Next page →") : null));
}

async function renderDetail(main, ctx) {
  const t = await api(`transactions/${part(ctx.id)}`);
  if (!ctx.current()) return;
  const status = h("div", { "aria-live": "polite" });
  const act = (action) => async () => {
    try {
      await api(`transactions/${action}`, { method: "POST", body: { ids: [t.id] } });
      ctx.go(location.hash);
    } catch (error) { ctx.failed(error, ctx); }
  };
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value ?? h("span", { class: "muted" }, "—"))];
  show(main,
    h("p", {}, link("#/transactions", "← Transactions")),
    h("h1", {}, "Transaction"),
    h("div", { class: "bar" },
      h("button", { type: "button", class: "primary", onclick: act("retry") }, "Retry now"),
      h("button", { type: "button", onclick: act("archive"), disabled: t.status === "archived" ? true : null }, "Archive")),
    status,
    h("dl", {},
      row("Id", t.id), row("Status", statusCell(t.status)), row("Error code", t.errorCode), row("Error", t.message),
      row("Attempts", String(t.attempts)), row("Next automatic attempt", t.nextAttemptAt ? time(t.nextAttemptAt) : null),
      row("Direction", t.direction), row("Operation", t.operation), row("Reason", t.reason),
      row("Person", link(`#/transactions${query({ mailbox: t.mailboxId })}`, person(t))),
      row("Subject", subject(t.subject)), row("Starts", time(t.start)),
      row("Outlook event", t.eventId ? link(`#/event${query({ mailbox: t.mailboxId, eventId: t.eventId })}`, t.eventId) : null),
      row("Dime.Scheduler appointment", t.appointmentGuid ? link(appointmentHref(t), t.appointmentGuid) : null),
      row("Created", time(t.createdAt)), row("Updated", time(t.updatedAt))),
    h("h2", {}, "Payload (what a retry sends again)"),
    h("pre", { tabindex: "0", "aria-label": "Payload" }, JSON.stringify(t.payload, null, 2)));
}
