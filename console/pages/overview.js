// Overview: live counts (each a link to the list behind it), last runs, expiring subscriptions,
// breaker alerts; refreshes every 15 s while shown.
import { api, query } from "../api.js";
import { h, link, message, pick, show, table, time } from "../dom.js";

const REFRESH_MS = 15000;
const EXPIRING_HOURS = 24;

function card(label, value, href) {
  const number = h("span", { class: "n" }, value === null || value === undefined ? "?" : String(value));
  return h("div", { class: "card" }, href ? link(href, number) : number, h("span", { class: "l" }, label));
}

function runOf(mailbox, kind) {
  return (mailbox.syncState || []).find((row) => pick(row, "rowKey") === `${kind}-run`);
}

function runCell(run) {
  if (!run) return h("span", { class: "muted" }, "never");
  const outcome = pick(run, "outcome");
  return h("span", { class: outcome === "completed" ? "" : "status-failed" },
    `${outcome} `, time(pick(run, "startedAt")),
    ` · ${pick(run, "writes") ?? 0} writes, ${pick(run, "deletes") ?? 0} deletes`,
    // Of the deletes, the copies nothing pointed at any more (orphans a reconcile healed).
    pick(run, "healed") ? h("span", { class: "healed" }, ` (${pick(run, "healed")} orphans healed)`) : null,
    `, ${pick(run, "errors") ?? 0} errors`);
}

// The Dime.Scheduler → Outlook reconcile: one run for every mailbox, so one line of its own.
function dimeRun(run) {
  if (!run) return message("empty", "The Dime.Scheduler → Outlook reconcile has not run yet (DIME_RECONCILE_SCHEDULE, nightly).");
  const problem = pick(run, "breaker") || pick(run, "lastError");
  return h("p", { id: "dime-reconcile" }, runCell(run),
    ` · ${pick(run, "changes") ?? 0} appointments listed, ${pick(run, "skipped") ?? 0} unchanged, `,
    `${pick(run, "graphRequests") ?? "?"} Graph and ${pick(run, "dimeRequests") ?? "?"} Dime.Scheduler requests, ${pick(run, "durationMs") ?? "?"} ms`,
    problem ? h("span", { class: "status-failed" }, ` · ${problem}`) : null);
}

export async function render(main, ctx) {
  const hourAgo = new Date(Date.now() - 3600 * 1000).toISOString();
  const [status, succeeded] = await Promise.all([
    api("status"),
    api("transactions/count", { params: { status: "succeeded", since: hourAgo } }),
  ]);
  if (!ctx.current()) return;
  const queues = status.queues || {};
  const names = Object.keys(queues);
  const sum = (list) => list.reduce((total, name) => total + (queues[name] || 0), 0);
  const poisonQueues = names.filter((name) => name.endsWith("-poison"));
  const failed = status.failedTransactions || { total: 0, byCode: {} };
  const byCode = Object.entries(failed.byCode || {});
  const mailboxes = status.mailboxes || [];
  const soon = Date.now() + EXPIRING_HOURS * 3600 * 1000;
  const expiring = mailboxes.filter((m) => m.enabled && (!m.subscriptionExpiry || Date.parse(m.subscriptionExpiry) < soon));
  const alerts = (failed.byCode || {}).CIRCUIT_BREAKER_TRIPPED || 0;
  const auto = h("input", { type: "checkbox", id: "auto", checked: sessionStorage.getItem("console.noRefresh") ? null : true,
    onchange: (e) => { if (e.target.checked) sessionStorage.removeItem("console.noRefresh"); else sessionStorage.setItem("console.noRefresh", "1"); } });

  show(main,
    h("h1", {}, "Overview"),
    h("div", { class: "bar" }, h("label", { class: "inline", for: "auto" }, auto, `Refresh every ${REFRESH_MS / 1000} s`),
      h("span", { class: "muted" }, "Updated ", time(new Date().toISOString()))),
    h("div", { class: "cards" },
      card("queued messages", sum(names.filter((n) => !n.endsWith("-poison")))),
      card("failed transactions", failed.total, "#/transactions?status=failed"),
      card("succeeded in the last hour", succeeded.count, `#/transactions${query({ status: "succeeded", since: hourAgo })}`),
      card("poison (failed every delivery)", ((failed.byCode || {}).POISON_MESSAGE || 0) + sum(poisonQueues), "#/transactions?status=failed&errorCode=POISON_MESSAGE"),
      card("breaker alerts", alerts, "#/transactions?status=failed&errorCode=CIRCUIT_BREAKER_TRIPPED")),
    h("h2", {}, "Failed by error code"),
    byCode.length
      ? h("div", { class: "cards" }, byCode.map(([code, n]) => card(code, n, `#/transactions${query({ status: "failed", errorCode: code })}`)))
      : message("ok", "No failed transactions."),
    h("h2", {}, "Subscriptions expiring within 24 hours (or missing)"),
    table([
      { head: "Mailbox", cell: (m) => m.upn || m.mailboxId },
      { head: "Expires", cell: (m) => (m.subscriptionExpiry ? time(m.subscriptionExpiry) : "no subscription") },
    ], expiring, "None: every enabled mailbox has a subscription for more than a day (the renewal timer keeps them alive)."),
    h("h2", {}, "Last runs per mailbox"),
    table([
      { head: "Mailbox", cell: (m) => link(`#/transactions${query({ mailbox: m.mailboxId })}`, m.upn || m.mailboxId) },
      { head: "Delta", cell: (m) => runCell(runOf(m, "delta")) },
      { head: "Reconcile", cell: (m) => runCell(runOf(m, "reconcile")), class: "hide-narrow" },
    ], mailboxes, "No mailbox is tracked yet: onboard people on the People page."),
    h("h2", {}, "Last Dime.Scheduler → Outlook reconcile"),
    dimeRun(status.dimeReconcile));
  const tick = () => {
    if (!ctx.current()) return;
    const focus = document.activeElement; // do not pull the page from under the keyboard focus
    const busy = main.contains(focus) && focus !== main && focus.id !== "auto";
    if (busy || sessionStorage.getItem("console.noRefresh") || document.visibilityState === "hidden") setTimeout(tick, REFRESH_MS);
    else render(main, ctx).catch((error) => ctx.failed(error, ctx));
  };
  setTimeout(tick, REFRESH_MS);
}
