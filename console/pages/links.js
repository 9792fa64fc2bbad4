// Links: Outlook events and their Dime.Scheduler appointments, paged with the API's token.
import { api, part, query } from "../api.js";
import { h, link, message, person, show, subject, table, time } from "../dom.js";

export async function render(main, ctx) {
  const mailbox = ctx.params.get("mailbox") || "";
  const eventId = ctx.params.get("eventId");
  const token = ctx.params.get("continuationToken");
  const page = await api("links", { params: { mailbox, continuationToken: token, pageSize: "100" } });
  if (!ctx.current()) return;
  const items = (page.items || page.value || []).filter((l) => !eventId || l.eventId === eventId);
  const input = h("input", { id: "mailbox", name: "mailbox", value: mailbox, size: 36 });
  const next = new URLSearchParams({ ...(mailbox && { mailbox }), ...(page.continuationToken && { continuationToken: page.continuationToken }) });
  show(main,
    h("h1", {}, "Links"),
    h("form", { class: "filters", onsubmit: (event) => { event.preventDefault(); ctx.go(`#/links${input.value.trim() ? `?mailbox=${part(input.value.trim())}` : ""}`); } },
      h("label", { for: "mailbox" }, "Mailbox (object id or UPN)", input), h("button", { type: "submit", class: "primary" }, "Show")),
    eventId ? message("status", "Only the link of event ", eventId, ". ", link(`#/links?mailbox=${part(mailbox)}`, "Show all of this mailbox")) : null,
    table([
      { head: "Person", cell: (l) => person(l), class: "wrap" },
      { head: "Subject", cell: (l) => link(`#/appointment/${part(l.appointmentGuid || "")}${query({ mailbox: l.mailboxId })}`, subject(l.subject)), class: "wrap" },
      { head: "Starts", cell: (l) => time(l.start) },
      { head: "Outlook event", cell: (l) => link(`#/event${query({ mailbox: l.mailboxId, eventId: l.eventId })}`, l.eventId), class: "wrap hide-narrow" },
      { head: "Appointment", cell: (l) => l.appointmentGuid || "", class: "wrap hide-narrow" },
      { head: "Origin", cell: (l) => l.origin || "" },
      { head: "Synchronised", cell: (l) => time(l.syncedAt) },
    ], items, "No links: an event is linked once it has been written to the planning board."),
    page.continuationToken ? h("p", {}, link(`#/links?${next}`, "Next page →")) : null);
}
