// Links: Outlook events and their Dime.Scheduler appointments, paged with the API's token.
import { api, part } from "../api.js";
import { h, link, message, show, table, time } from "../dom.js";

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
      h("label", { for: "mailbox" }, "Mailbox (object id)", input), h("button", { type: "submit", class: "primary" }, "Show")),
    eventId ? message("status", "Only the link of event ", eventId, ". ", link(`#/links?mailbox=${part(mailbox)}`, "Show all of this mailbox")) : null,
    table([
      { head: "Mailbox", cell: (l) => l.mailboxId, class: "wrap hide-narrow" },
      { head: "Outlook event", cell: (l) => l.eventId, class: "wrap" },
      { head: "Appointment", cell: (l) => link(`#/appointments?appointment=${part(l.appointmentGuid || "")}`, l.appointmentGuid || ""), class: "wrap" },
      { head: "Origin", cell: (l) => l.origin || "" },
      { head: "Resource e-mail", cell: (l) => l.resourceEmail || "", class: "hide-narrow" },
      { head: "Synchronised", cell: (l) => time(l.syncedAt) },
    ], items, "No links: an event is linked once it has been written to the planning board."),
    page.continuationToken ? h("p", {}, link(`#/links?${next}`, "Next page →")) : null);
}
