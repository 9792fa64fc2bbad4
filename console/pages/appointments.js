// Appointments: the transactions grouped per appointment (or event), each with its last transaction,
// its person, subject and start; a search over those, run here over the rows already fetched.
import { listAll, part, query } from "../api.js";
import { h, link, matches, message, person, show, subject, table, time } from "../dom.js";
import { appointmentHref, filterOf, statusCell } from "./transactions.js";

export async function render(main, ctx) {
  const filter = filterOf(ctx.params);
  const wanted = ctx.params.get("appointment");
  const search = ctx.params.get("q") || "";
  delete filter.appointment;
  const { items, capped } = await listAll("transactions", filter, 1000);
  if (!ctx.current()) return;
  const groups = new Map();
  for (const t of items) {
    const key = t.appointmentGuid || `event:${t.eventId}`;
    if (wanted && t.appointmentGuid !== wanted) continue;
    const group = groups.get(key) || { count: 0, last: t, shown: t };
    group.count += 1;
    if ((t.createdAt || "") >= (group.last.createdAt || "")) group.last = t;
    // The newest row that knows a subject names the group (a failure may know none).
    if (t.subject && (!group.shown.subject || (t.createdAt || "") >= (group.shown.createdAt || ""))) group.shown = t;
    groups.set(key, group);
  }
  const all = [...groups.values()].sort((a, b) => (a.last.createdAt < b.last.createdAt ? 1 : -1));
  const rows = all.filter((g) => matches(g.shown, search) || matches(g.last, search));
  const input = h("input", { id: "q", name: "q", type: "search", value: search, size: 30, placeholder: "e.g. Jane 24 Nov" });
  const keep = { ...filter, ...(wanted && { appointment: wanted }) };
  show(main,
    h("h1", {}, "Appointments"),
    h("p", { class: "muted" }, `Each Dime.Scheduler appointment (or Outlook event) with its last transaction, both directions, from the transactions since `,
      time(filter.since), wanted ? ` · appointment ${wanted} · ` : " · ", link("#/appointments", "show all")),
    h("form", { class: "filters", role: "search", onsubmit: (event) => {
      event.preventDefault();
      ctx.go(`#/appointments${query({ ...keep, q: input.value.trim() })}`);
    } },
    h("label", { for: "q" }, "Search person, subject, date", input),
    h("button", { type: "submit", class: "primary" }, "Search")),
    search ? message("status", `${rows.length} of ${all.length} appointments match “${search}”. `, link(`#/appointments${query(keep)}`, "Clear the search")) : null,
    capped ? message("status", "Showing the groups of the first 1000 transactions: narrow the date range on the Transactions page.") : null,
    table([
      { head: "Subject", cell: (g) => appointmentHref(g.shown) ? link(appointmentHref(g.shown), subject(g.shown.subject)) : subject(g.shown.subject), class: "wrap" },
      { head: "Starts", cell: (g) => time(g.shown.start) },
      { head: "Person", cell: (g) => person(g.shown), class: "wrap" },
      { head: "Direction", cell: (g) => g.last.direction, class: "hide-narrow" },
      { head: "Last transaction", cell: (g) => [statusCell(g.last.status), ` ${g.last.operation} `, link(`#/transactions/${part(g.last.id)}`, time(g.last.createdAt))] },
      { head: "Error", cell: (g) => [g.last.errorCode || "", g.last.message ? ` ${g.last.message}` : ""], class: "wrap" },
      { head: "Transactions", cell: (g) => link(appointmentHref(g.last) || `#/transactions${query({ mailbox: g.last.mailboxId, since: filter.since })}`, String(g.count)) },
    ], rows, search ? "No appointment matches this search." : "No transaction in this period: appointments appear here once a change has been written."));
}
