// Unmatched: what the Dime.Scheduler → Outlook direction could not match to a mailbox, when that
// direction provides GET /api/manage/unmatched; a clear "not available" otherwise. An entry leaves
// the list once the appointment is placed (the API recomputes it at every publication/reconcile).
import { api, ApiError } from "../api.js";
import { h, message, show, table, time } from "../dom.js";

const KINDS = {
  assignment: "Planner's appointment, no calendar",
  "outlook-event": "Outlook event, no appointment",
};

// The API's reason codes (shared/core/dime_to_outlook/eligibility.py, unmatched.py), in words.
const REASONS = {
  "resource-unknown": "Dime.Scheduler does not know this resource (not in its resource list)",
  "no-email": "The resource has no e-mail address in Dime.Scheduler",
  "email-mismatch": "The appointment names another e-mail than the resource's record (refused)",
  "integration-disabled": "Exchange integration is off for this resource in Dime.Scheduler",
  "not-onboarded": "Nobody onboarded here has the resource's e-mail: onboard the person on the People page",
  "no-mailbox": "No mailbox of the tenant has the resource's e-mail",
  "appointment-unknown": "The planner's appointment is unknown here (its event is left in Outlook)",
  "appointment-deleted": "The appointment was deleted; its Outlook event is not removed yet",
};

export function reasonText(reason) {
  const text = String(reason ?? "");
  if (text.startsWith("rule: ")) return `Kept off Outlook by the rule "${text.slice(6)}"`;
  return REASONS[text] || text || "—";
}

export async function render(main, ctx) {
  let page;
  try {
    page = await api("unmatched");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    if (!ctx.current()) return;
    return show(main, h("h1", {}, "Unmatched"), message("empty",
      "Not available: this installation does not provide the Dime.Scheduler → Outlook direction's list of unmatched appointments " +
      "(GET /api/manage/unmatched answered 404). Nothing to do here until that direction is deployed."));
  }
  if (!ctx.current()) return;
  const items = page.items || page.value || [];
  show(main, h("h1", {}, "Unmatched"),
    h("p", { class: "muted" }, "Planner's appointments that could not reach a person's calendar, and Outlook events this app wrote " +
      "whose appointment is gone. An entry disappears once the appointment is placed."),
    page.truncated ? message("status", `Showing the first ${items.length} entries.`) : null,
    table([
      { head: "Subject", class: "wrap", cell: (i) => i.subject ?? h("span", { class: "muted" }, "(not known)") },
      { head: "Resource", class: "wrap", cell: (i) => i.resource ?? "" },
      { head: "Start", cell: (i) => time(i.start) },
      { head: "Reason", class: "wrap", cell: (i) => reasonText(i.reason) },
      { head: "Kind", class: "hide-narrow", cell: (i) => KINDS[i.kind] || String(i.kind ?? "") },
      { head: "Appointment", class: "hide-narrow wrap", cell: (i) => h("span", { class: "muted" }, i.appointmentGuid ?? "") },
    ], items, "Nothing unmatched: every appointment published by Dime.Scheduler found its mailbox."));
}
