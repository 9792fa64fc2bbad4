// Appointments: the transactions grouped per appointment (or event), each with its last transaction.
import { listAll, part, query } from "../api.js";
import { h, link, message, show, table, time } from "../dom.js";
import { filterOf, statusCell } from "./transactions.js";

export async function render(main, ctx) {
  const filter = filterOf(ctx.params);
  const wanted = ctx.params.get("appointment");
  delete filter.appointment;
  const { items, capped } = await listAll("transactions", filter, 1000);
  if (!ctx.current()) return;
  const groups = new Map();
  for (const t of items) {
    const key = t.appointmentGuid || `event:${t.eventId}`;
    if (wanted && t.appointmentGuid !== wanted) continue;
    const group = groups.get(key) || { count: 0, last: t };
    group.count += 1;
    if ((t.createdAt || "") >= (group.last.createdAt || "")) group.last = t;
    groups.set(key, group);
  }
  const rows = [...groups.values()].sort((a, b) => (a.last.createdAt < b.last.createdAt ? 1 : -1));
  show(main,
    h("h1", {}, "Appointments"),
    h("p", { class: "muted" }, `Each Dime.Scheduler appointment (or Outlook event) with its last transaction, both directions, from the transactions since `,
      time(filter.since), wanted ? ` · appointment ${wanted} · ` : " · ", link("#/appointments", "show all")),
    capped ? message("status", "Showing the groups of the first 1000 transactions: narrow the date range on the Transactions page.") : null,
    table([
      { head: "Appointment", cell: (g) => g.last.appointmentGuid || h("span", { class: "muted" }, "none") , class: "wrap" },
      { head: "Outlook event", cell: (g) => g.last.eventId || "", class: "wrap hide-narrow" },
      { head: "Direction", cell: (g) => g.last.direction },
      { head: "Last transaction", cell: (g) => [statusCell(g.last.status), ` ${g.last.operation} `, link(`#/transactions/${part(g.last.id)}`, time(g.last.createdAt))] },
      { head: "Error", cell: (g) => [g.last.errorCode || "", g.last.message ? ` ${g.last.message}` : ""], class: "wrap" },
      { head: "Transactions", cell: (g) => link(`#/transactions${query({ mailbox: g.last.mailboxId, since: filter.since })}`, String(g.count)) },
    ], rows, "No transaction in this period: appointments appear here once a change has been written."));
}
