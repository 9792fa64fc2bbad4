// My settings: the signed-in person's own consent (enabled, show-as values, sensitivities), with a
// preview of what the planning board will show of their next 7 days. Who they are comes from
// their Entra ID sign-in on the server, never from this page. A field an administrator set is
// locked: shown disabled, with the reason, and never sent.
import { own } from "../api.js";
import { h, message, show, table, time } from "../dom.js";

const SHOW_AS = ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"];
const SENSITIVITIES = ["normal", "personal", "private", "confidential"];
const LABELS = {
  free: "Free", tentative: "Tentative", busy: "Busy", oof: "Away (out of office)", workingElsewhere: "Working elsewhere",
  unknown: "Unknown", normal: "Normal", personal: "Personal", private: "Private", confidential: "Confidential",
};
const REASONS = {
  "mailbox-disabled": "synchronisation is off",
  "show-as-not-consented": "its show-as is not shared",
  "sensitivity-not-consented": "its sensitivity is not shared",
  cancelled: "cancelled",
  "series-master": "a series (its occurrences are shown one by one)",
  "outside-window": "outside the synchronised period",
  "from-the-planning-board": "planned on the board (always shown)",
};
let flash = null;

function lockNote(field, person) {
  return person.locked.includes(field)
    ? h("span", { class: "locked" }, "Locked by an administrator: ask them to change it.")
    : null;
}

function choices(name, legend, values, chosen, person) {
  const locked = person.locked.includes(name);
  return h("fieldset", { disabled: locked ? true : null, "data-field": name },
    h("legend", {}, legend), lockNote(name, person),
    values.map((value) => h("label", { class: "inline" },
      h("input", { type: "checkbox", name, value, checked: chosen.includes(value) ? true : null }), LABELS[value] || value)));
}

// What the form says, without the locked fields (the server refuses those).
function draft(form, person) {
  const data = new FormData(form);
  const body = {};
  if (!person.locked.includes("enabled")) body.enabled = data.get("enabled") === "on";
  if (!person.locked.includes("showAs")) body.showAs = data.getAll("showAs");
  if (!person.locked.includes("sensitivities")) body.sensitivities = data.getAll("sensitivities");
  return body;
}

function previewTable(result) {
  const rows = result.items || [];
  return [
    h("p", { class: "muted" }, "From ", time(result.from), " to ", time(result.until),
      result.capped ? " (the first events only: your week is very full)" : ""),
    table([
      { head: "When", cell: (r) => (r.start ? time(r.start) : "—") },
      { head: "In your calendar", cell: (r) => r.subject || h("span", { class: "muted" }, "(no subject)"), class: "wrap" },
      { head: "On the planning board", class: "wrap", cell: (r) => (r.shown
        ? [h("span", { class: "status-succeeded" }, "shown"), " as ", r.boardSubject || "(no subject)",
          r.reason ? h("span", { class: "muted" }, ` · ${REASONS[r.reason] || r.reason}`) : null]
        : h("span", { class: "muted" }, `not shown: ${REASONS[r.reason] || r.reason}`)) },
    ], rows, "Nothing in your calendar over the next 7 days."),
  ];
}

export async function render(main, ctx) {
  let person;
  try {
    person = await own("me");
  } catch (error) {
    if (error.status === 404) return show(main, h("h1", {}, "My settings"), message("error", error.message));
    throw error;
  }
  if (!ctx.current()) return;
  const outcome = h("div", { "aria-live": "polite" }, flash);
  flash = null;
  const previewArea = h("section", { "aria-label": "Preview" }, message("status", "Reading your next 7 days…"));
  const preview = async (body) => {
    show(previewArea, message("status", "Reading your next 7 days…"));
    try {
      const result = await own("me/preview", { method: "POST", body });
      if (ctx.current()) show(previewArea, previewTable(result));
    } catch (error) {
      if (ctx.current()) show(previewArea, message("error", `Could not preview (${error.message}).`));
    }
  };
  const form = h("form", { class: "own", "aria-label": "My settings", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await own("me", { method: "PATCH", body: draft(form, person) });
      flash = message("ok", "Saved. The planning board follows within a few minutes.");
      ctx.go("#/me");
    } catch (error) {
      if (error.status) show(outcome, message("error", `Not saved (${error.message}).`));
      else ctx.failed(error, ctx);
    }
  } },
  h("fieldset", { disabled: person.locked.includes("enabled") ? true : null, "data-field": "enabled" },
    h("legend", {}, "Synchronisation"), lockNote("enabled", person),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "enabled", checked: person.enabled ? true : null }),
      "Show my Outlook calendar on the planning board")),
  choices("showAs", "Events shown as… are shared", SHOW_AS, person.showAs || [], person),
  choices("sensitivities", "Events of sensitivity… are shared", SENSITIVITIES, person.sensitivities || [], person),
  h("p", { class: "muted" }, "Private and confidential events reach the board as “Private appointment”, without their subject, unless your organisation allows more."),
  h("div", { class: "bar" },
    h("button", { type: "button", onclick: () => preview(draft(form, person)) }, "Preview"),
    h("button", { type: "submit", class: "primary" }, "Save")));
  show(main,
    h("h1", {}, "My settings"),
    h("p", {}, "Signed in as ", h("strong", {}, person.name || person.upn), " ", h("span", { class: "muted" }, person.upn)),
    outcome,
    form,
    h("h2", {}, "What the planning board will show of your next 7 days"),
    previewArea);
  await preview(draft(form, person));
}
