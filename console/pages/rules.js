// Rules: which planner appointments reach Outlook and how they look there. The rules in force in
// words, a draft edited as JSON, a preview of what the draft would change per person over the next
// two weeks, and Save (refused with 409 when someone saved meanwhile).
import { api } from "../api.js";
import { h, message, show, table, time } from "../dom.js";

const OPS = {
  equals: "is", notEquals: "is not", in: "is one of", startsWith: "starts with", contains: "contains",
  isEmpty: "is empty", greaterThan: "is more than", lessThan: "is less than",
};
const CHANGES = { skipped: "stays off Outlook", placed: "reaches Outlook", changed: "looks different" };

function value(v) {
  return Array.isArray(v) ? v.map((x) => JSON.stringify(x)).join(", ") : JSON.stringify(v);
}

export function describe(when) {
  if (!when) return "always";
  if (when.all) return `all of (${when.all.map(describe).join("; ")})`;
  if (when.any) return `any of (${when.any.map(describe).join("; ")})`;
  if (when.not) return `not (${describe(when.not)})`;
  const field = String(when.field).replace(/^field:/, "free field ");
  return when.op === "isEmpty" ? `${field} is empty` : `${field} ${OPS[when.op] || when.op} ${value(when.value)}`;
}

export function outcome(then) {
  if (!then || then.action === "skip") return "stays off Outlook";
  const looks = [
    then.showAs && `shown as ${then.showAs}`, then.sensitivity && `${then.sensitivity}`,
    then.categories && `categories ${then.categories.join(", ")}`, then.subject && `subject “${then.subject}”`,
    then.body && "own body", then.reminder !== undefined && `reminder ${then.reminder ? "on" : "off"}`,
  ].filter(Boolean);
  return looks.length ? `placed: ${looks.join(", ")}` : "placed as usual";
}

function verdict(v) {
  return [v.action === "skip" ? "off Outlook" : outcome(v), v.rule ? h("span", { class: "muted" }, ` (rule “${v.rule}”)`) : h("span", { class: "muted" }, " (no rule)")];
}

function previewOf(result) {
  const c = result.counts;
  const rows = result.people.flatMap((p) => p.changes.map((change) => ({ person: p.person, ...change })));
  return [
    h("h2", {}, "Preview: the next two weeks"),
    message("status", `${c.skipped} would stay off Outlook, ${c.placed} would reach it, ${c.changed} would look different, ${c.unchanged} unchanged.`),
    table([
      { head: "Person", cell: (r) => r.person },
      { head: "Appointment", class: "wrap", cell: (r) => [r.subject || "(no subject)", h("br"), time(r.start)] },
      { head: "Change", cell: (r) => CHANGES[r.change] || r.change },
      { head: "Now", class: "wrap", cell: (r) => verdict(r.before) },
      { head: "With the draft", class: "wrap", cell: (r) => verdict(r.after) },
    ], rows, "The draft changes nothing in the next two weeks."),
  ];
}

export async function render(main, ctx) {
  const stored = await api("rules");
  if (!ctx.current()) return;
  let version = stored.version;
  const draft = h("textarea", { id: "draft", rows: "16", spellcheck: "false", "aria-describedby": "draft-help" });
  draft.value = JSON.stringify(stored.rules, null, 2);
  const outcomeBox = h("div", { "aria-live": "polite" });
  const previewBox = h("div", {});
  const read = () => {
    try { return JSON.parse(draft.value); } catch (error) {
      show(outcomeBox, message("error", `The draft is not JSON: ${error.message}`));
      return undefined;
    }
  };
  const run = (fn) => async () => {
    try { await fn(); } catch (error) {
      if (error.status) show(outcomeBox, message("error", error.message)); else ctx.failed(error, ctx);
    }
  };
  const previewButton = h("button", { type: "button", onclick: run(async () => {
    const rules = read();
    if (rules === undefined) return;
    show(previewBox);
    show(outcomeBox, message("status", "Reading the next two weeks from Dime.Scheduler…"));
    const result = await api("rules/preview", { method: "POST", body: { rules } });
    if (!ctx.current()) return;
    show(outcomeBox);
    show(previewBox, previewOf(result));
  }) }, "Preview");
  const saveButton = h("button", { type: "button", class: "primary", onclick: run(async () => {
    const rules = read();
    if (rules === undefined) return;
    const saved = await api("rules", { method: "PUT", body: { rules, version } });
    version = saved.version;
    show(outcomeBox, message("ok", `Saved ${saved.rules.length} rule(s). ${saved.applying || ""}`));
    show(current, currentTable(saved.rules));
  }) }, "Save");
  const current = h("div", {}, currentTable(stored.rules));
  show(main,
    h("h1", {}, "Rules"),
    h("p", {}, "The first rule whose condition holds decides: the appointment stays off Outlook, or is placed with the look the rule gives it. ",
      "With no matching rule it is placed as usual. Conditions read the category, time marker, job, task, subject, importance, resource, duration and free fields."),
    current,
    h("h2", {}, "Edit"),
    h("label", { for: "draft", class: "wide" }, "Rules (JSON)", draft),
    h("p", { id: "draft-help", class: "muted" },
      'Example: {"name": "Placeholders stay out", "when": {"field": "category", "op": "equals", "value": "PLACEHOLDER"}, "then": {"action": "skip"}}'),
    h("div", { class: "bar" }, previewButton, saveButton),
    outcomeBox,
    previewBox);
}

function currentTable(rules) {
  return table([
    { head: "#", cell: (r) => String(rules.indexOf(r) + 1) },
    { head: "Rule", cell: (r) => [r.name, r.enabled === false ? h("span", { class: "muted" }, " (off)") : null] },
    { head: "When", class: "wrap", cell: (r) => describe(r.when) },
    { head: "Then", class: "wrap", cell: (r) => outcome(r.then) },
  ], rules, "No rules: every appointment assigned to an eligible person is placed in their calendar as usual.");
}
