// One appointment (#/appointment/<guid>?mailbox=) or the appointment of one Outlook event
// (#/event?mailbox=&eventId=): its links both ways, each side as we last recorded it, and its
// timeline (every transaction, newest first, with error and payload, and retry/archive).
import { api, part, query } from "../api.js";
import { confirmDialog, h, link, message, person, show, subject, table, time } from "../dom.js";
import { statusCell } from "./transactions.js";

let flash = null; // the outcome of a retry/archive, shown above the reloaded page

export async function render(main, ctx) {
  const mailbox = ctx.params.get("mailbox");
  const eventId = ctx.params.get("eventId");
  const isEvent = !ctx.id && eventId;
  if (!ctx.id && !isEvent) {
    show(main, h("h1", {}, "Appointment"), message("error", "No appointment named in the address. ", link("#/appointments", "Appointments")));
    return;
  }
  const a = isEvent
    ? await api("events", { params: { mailbox, eventId } })
    : await api(`appointments/${part(ctx.id)}`, { params: { mailbox } });
  if (!ctx.current()) return;
  const status = h("div", { "aria-live": "polite" }, flash ? message("ok", flash) : null);
  flash = null;
  const named = [...a.placed, ...a.links, ...a.transactions];
  const title = (a.board && a.board.subject) || (named.find((x) => x.subject) || {}).subject;
  const start = (a.board && a.board.start) || (named.find((x) => x.start) || {}).start;
  const people = new Map();
  for (const x of named) if (x.mailboxId && x.mailboxId !== "dime-scheduler" && !people.has(x.mailboxId)) people.set(x.mailboxId, x);
  const act = (action, t) => async () => {
    try {
      if (action === "archive" && !(await confirmDialog(`Archive the failed transaction of ${t.createdAt || "this appointment"}? It is no longer listed as failed.`, "Archive"))) return;
      const answer = await api(`transactions/${action}`, { method: "POST", body: { ids: [t.id] } });
      const result = action === "retry" && answer.items && answer.items[0] ? answer.items[0].result : null;
      flash = action === "retry" ? `Retried: ${result || "done"}.` : "Archived.";
      ctx.go(location.hash);
    } catch (error) { ctx.failed(error, ctx); }
  };
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value ?? h("span", { class: "muted" }, "—"))];
  const links = [
    ...a.placed.map((p) => ({ ...p, way: "Dime.Scheduler → Outlook", state: p.dismissed ? "deleted in Outlook (kept away)" : p.pending ? "create in flight" : p.eventId ? "placed" : "no event now" })),
    ...a.links.map((l) => ({ ...l, way: l.origin === "dime" ? "Outlook side of a placed event" : "Outlook → Dime.Scheduler", state: "linked" })),
  ];
  show(main,
    h("p", {}, link("#/appointments", "← Appointments")),
    h("h1", {}, title ? subject(title) : "Appointment"),
    isEvent ? message("status", "The appointment of Outlook event ", eventId, ".") : null,
    status,
    h("dl", {},
      row("Starts", start ? time(start) : null),
      row(people.size > 1 ? "People" : "Person", people.size ? [...people.values()].map((x) => h("div", {}, person(x))) : null),
      row("Dime.Scheduler appointment", a.appointmentGuid),
      row("Made in", a.outlookOrigin ? "Outlook (written to the board by this app)" : a.board ? "Dime.Scheduler (placed in Outlook by this app)" : null),
      row("State", a.deleted ? "deleted" : null)),
    h("h2", {}, "On the planning board (as we last applied it)"),
    a.board
      ? h("dl", {},
        row("Subject", subject(a.board.subject)), row("Starts", time(a.board.start)), row("Ends", time(a.board.end)),
        row("Job / task", [a.board.jobNo, a.board.taskNo].filter(Boolean).join(" / ") || null),
        row("Resources", a.board.resources.length ? a.board.resources.join(", ") : null),
        row("Last modified in Dime.Scheduler", time(a.board.lastModified)))
      : message("empty", a.links.some((l) => l.origin !== "dime")
        ? "Written to the board from Outlook: the board shows the subject and start of the link below."
        : "No planner version recorded for this appointment."),
    a.unmatched.length ? [h("h2", {}, "Not placed"), table([
      { head: "Resource", cell: (u) => u.resource }, { head: "Why", cell: (u) => u.reason, class: "wrap" },
    ], a.unmatched, "")] : null,
    h("h2", {}, "Links (the Outlook side, as we last recorded it)"),
    table([
      { head: "Direction", cell: (l) => l.way },
      { head: "Person", cell: (l) => person(l), class: "wrap" },
      { head: "Subject", cell: (l) => subject(l.subject), class: "wrap" },
      { head: "Starts", cell: (l) => time(l.start) },
      { head: "Outlook event", cell: (l) => (l.eventId ? link(`#/event${query({ mailbox: l.mailboxId, eventId: l.eventId })}`, l.eventId === eventId ? h("mark", {}, l.eventId) : l.eventId) : h("span", { class: "muted" }, "none")), class: "wrap hide-narrow" },
      { head: "State", cell: (l) => l.state },
      { head: "Synchronised", cell: (l) => time(l.syncedAt) },
    ], links, "No link: nothing of this appointment is in a calendar or on the board now."),
    h("h2", {}, "Timeline"),
    a.scanned ? message("status", "Found by a scan of every mailbox (the address names none): open it from a list to read one mailbox only.") : null,
    a.more ? message("status", `The newest ${a.transactions.length} transactions are shown.`) : null,
    a.transactions.length
      ? h("ol", { class: "timeline", "aria-label": "Timeline" }, a.transactions.map((t) => h("li", { class: t.status },
        h("div", {}, link(`#/transactions/${part(t.id)}`, time(t.createdAt)), " ", statusCell(t.status), ` ${t.direction} · ${t.operation}`,
          t.reason ? ` · ${t.reason}` : "", t.attempts > 1 ? ` · ${t.attempts} attempts` : ""),
        h("div", {}, person(t)),
        t.errorCode || t.message ? h("p", { class: "msg error" }, t.errorCode || "", t.message ? ` ${t.message}` : "") : null,
        t.status === "failed" || t.status === "archived" ? h("div", { class: "bar" },
          h("button", { type: "button", class: "primary", onclick: act("retry", t) }, "Retry now"),
          t.status === "failed" ? h("button", { type: "button", onclick: act("archive", t) }, "Archive") : null) : null,
        h("details", {}, h("summary", {}, "Payload"), h("pre", { tabindex: "0", "aria-label": "Payload" }, JSON.stringify(t.payload, null, 2))))))
      : message("empty", "No transaction of this appointment is kept (or none yet)."));
}
