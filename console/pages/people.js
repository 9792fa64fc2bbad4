// People: every tracked mailbox (consent, subscription, last sync); onboard, edit, disable, remove, resync.
import { api, part, query } from "../api.js";
import { confirmDialog, h, link, message, pick, show, table, time } from "../dom.js";

const SHOW_AS = ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"];
const SENSITIVITIES = ["normal", "personal", "private", "confidential"];
let flash = null;

function choices(name, legend, values, chosen) {
  return h("fieldset", {}, h("legend", {}, legend),
    values.map((value) => h("label", { class: "inline" },
      h("input", { type: "checkbox", name, value, checked: chosen.includes(value) ? true : null }), value)));
}

function editor(person, ctx) {
  const id = `email-${person.id}`;
  return h("form", { class: "filters", "aria-label": `Edit ${person.upn}`, onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    // Only what changed: every consent field an administrator sets is locked on the person's own page.
    const body = {};
    const same = (a, b) => [...a].sort().join() === [...(b || [])].sort().join();
    if ((data.get("enabled") === "on") !== Boolean(person.enabled)) body.enabled = data.get("enabled") === "on";
    if (!same(data.getAll("showAs"), person.showAs)) body.showAs = data.getAll("showAs");
    if (!same(data.getAll("sensitivities"), person.sensitivities)) body.sensitivities = data.getAll("sensitivities");
    const email = String(data.get("email") || "").trim();
    if (email) body.email = email;
    try {
      await api(`resources/${part(person.id)}`, { method: "PATCH", body });
      flash = message("ok", `Saved ${person.upn}.`);
      ctx.go("#/people");
    } catch (error) { ctx.failed(error, ctx); }
  } },
  h("label", { for: id }, "Dime.Scheduler e-mail", h("input", { id, name: "email", type: "email", value: person.email || "" })),
  h("label", { class: "inline" }, h("input", { type: "checkbox", name: "enabled", checked: person.enabled ? true : null }), "Synchronise (consent)"),
  choices("showAs", "Show-as values synchronised", SHOW_AS, person.showAs || []),
  choices("sensitivities", "Sensitivities synchronised", SENSITIVITIES, person.sensitivities || []),
  h("button", { type: "submit", class: "primary" }, "Save"));
}

export async function render(main, ctx) {
  const [list, status] = await Promise.all([api("resources"), api("status")]);
  if (!ctx.current()) return;
  const people = list.items || list.value || [];
  const runs = new Map((status.mailboxes || []).map((m) => [m.mailboxId,
    (m.syncState || []).find((row) => pick(row, "rowKey") === "delta-run")]));
  const outcome = h("div", { "aria-live": "polite" }, flash);
  flash = null;
  const act = (fn) => async () => { try { await fn(); } catch (error) { ctx.failed(error, ctx); } };
  const upn = h("input", { id: "upn", name: "upn", required: true, placeholder: "jane@contoso.com", autocomplete: "off" });
  const onboard = h("form", { class: "filters", "aria-label": "Onboard a person", onsubmit: async (event) => {
    event.preventDefault();
    const who = upn.value.trim();
    show(outcome, message("status", `Onboarding ${who}…`));
    try {
      const person = await api(`resources/${part(who)}`, { method: "PUT" });
      const mail = person.onboardingMail === undefined ? ""
        : { sent: " The link to their own settings was mailed to them.", off: "" }[person.onboardingMail];
      flash = message(String(person.onboardingMail || "").startsWith("failed") ? "error" : "ok",
        `Onboarded ${person.upn}: subscription created, their calendar is being read now.`,
        mail ?? ` The mail with the link to their own settings was not sent (${person.onboardingMail}).`);
      ctx.go("#/people");
    } catch (error) {
      if (error.status) show(outcome, message("error", `Could not onboard ${who} (${error.message}).`));
      else ctx.failed(error, ctx);
    }
  } }, h("label", { for: "upn" }, "User principal name or object id", upn), h("button", { type: "submit", class: "primary" }, "Onboard"));

  const actions = (p) => h("div", { class: "bar" },
    h("button", { type: "button", "aria-expanded": "false", onclick: (event) => {
      const row = event.target.closest("tr");
      const open = row.nextElementSibling && row.nextElementSibling.dataset.editor;
      if (open) { row.nextElementSibling.remove(); event.target.setAttribute("aria-expanded", "false"); return; }
      event.target.setAttribute("aria-expanded", "true");
      const cell = h("td", { colspan: "5" }, editor(p, ctx));
      const extra = h("tr", { "data-editor": "1" }, cell);
      row.after(extra);
      cell.querySelector("input").focus();
    } }, "Edit"),
    h("button", { type: "button", onclick: act(async () => {
      if (p.enabled && !(await confirmDialog(`Disable ${p.upn}? Their calendar is no longer synchronised and the appointments ` +
        "this app put on the planning board for them are removed. Their settings are kept: Enable brings everything back.", "Disable"))) return;
      await api(`resources/${part(p.id)}`, { method: "PATCH", body: { enabled: !p.enabled } });
      flash = message("ok", `${p.enabled ? "Disabled" : "Enabled"} ${p.upn}.`);
      ctx.go("#/people");
    }) }, p.enabled ? "Disable…" : "Enable"),
    h("button", { type: "button", onclick: act(async () => {
      await api(`resources/${part(p.id)}/resync`, { method: "POST" });
      show(outcome, message("ok", `Resync of ${p.upn} queued.`));
    }) }, "Resync"),
    h("button", { type: "button", class: "danger", onclick: act(async () => {
      const also = h("input", { type: "checkbox", id: "remove-appointments" });
      const sure = await confirmDialog(`Remove ${p.upn}? Their subscription is deleted and their calendar no longer synchronised.`, "Remove",
        h("label", { class: "inline", for: "remove-appointments" }, also, "Also delete the appointments this app put on the planning board"));
      if (!sure) return;
      const answer = await api(`resources/${part(p.id)}`, { method: "DELETE", params: { removeAppointments: also.checked ? "true" : "" } });
      flash = message("ok", `Removed ${p.upn} (${answer.appointmentsRemoved ?? 0} appointments deleted).`);
      ctx.go("#/people");
    }) }, "Remove…"));

  show(main,
    h("h1", {}, "People"),
    onboard,
    outcome,
    table([
      { head: "Person", cell: (p) => [link(`#/transactions${query({ mailbox: p.id })}`, p.displayName || p.upn), h("br"),
        h("span", { class: "muted" }, p.displayName ? p.upn : p.email)] },
      { head: "Consent", cell: (p) => [p.enabled ? `${(p.showAs || []).join(", ")} · ${(p.sensitivities || []).join(", ")}` : h("span", { class: "status-failed" }, "disabled"),
        (p.locked || []).length ? h("span", { class: "muted" }, ` · locked: ${p.locked.join(", ")}`) : null] },
      { head: "Subscription expires", cell: (p) => (p.subscription ? time(p.subscription.expiresAt) : "none"), class: "hide-narrow" },
      { head: "Last sync", cell: (p) => { const run = runs.get(p.id); return run ? [time(pick(run, "startedAt")), ` ${pick(run, "outcome")}`] : "not yet"; } },
      { head: "Actions", cell: actions },
    ], people, "Nobody is onboarded yet: enter a user principal name above and choose Onboard."));
}
