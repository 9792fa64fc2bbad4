// Unmatched: what the Dime.Scheduler → Outlook direction could not match to a mailbox, when that
// direction provides GET /api/manage/unmatched; a clear "not available" otherwise.
import { api, ApiError } from "../api.js";
import { h, message, show, table } from "../dom.js";

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
  const fields = [...new Set(items.flatMap((item) => Object.keys(item)))].slice(0, 8);
  show(main, h("h1", {}, "Unmatched"),
    table(fields.map((name) => ({ head: name, class: "wrap", cell: (item) => {
      const value = item[name];
      return value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
    } })), items, "Nothing unmatched: every appointment published by Dime.Scheduler found its mailbox."));
}
