// Overview: live counts (each a link to the list behind it), the history in charts (outcomes per
// hour and per day, queue depths, the timers' last runs), expiring subscriptions, breaker alerts;
// refreshes every 15 s while shown. Everything comes from one /status answer (the history is one
// range query of the history table, however many transactions were written).
import { api, query } from "../api.js";
import { depthChart, outcomeChart } from "../chart.js";
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

const DIRECTIONS = [["outlookToDime", "Outlook → Dime.Scheduler"], ["dimeToOutlook", "Dime.Scheduler → Outlook"]];
const HOUR = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
const DAY = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
const DAY_TICK = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
const outcomes = (bucket, key) => ({ ok: (bucket[key] || {}).succeeded || 0, bad: (bucket[key] || {}).failed || 0 });

function historyCharts(history) {
  const hours = history.hours || [];
  const days = history.days || [];
  return h("div", { class: "charts" }, DIRECTIONS.flatMap(([key, name]) => [
    outcomeChart({ id: `${key}-hours`, title: `${name}, last 24 hours`, unit: "hour",
      buckets: hours.map((b, i) => {
        const start = new Date(b.start);
        const hour = String(start.getHours()).padStart(2, "0");
        return { label: `${HOUR.format(start)} (+1 h)`, tick: (hours.length - 1 - i) % 3 ? null : hour, ...outcomes(b, key) };
      }) }),
    outcomeChart({ id: `${key}-days`, title: `${name}, last 14 days`, unit: "day",
      buckets: days.map((b, i) => {
        const day = new Date(`${b.day}T00:00:00Z`);
        return { label: `${DAY.format(day)} (UTC day)`, tick: (days.length - 1 - i) % 2 ? null : DAY_TICK.format(day), ...outcomes(b, key) };
      }) }),
  ]));
}

function queueChart(queues) {
  const names = Object.keys(queues).filter((n) => !n.endsWith("-poison-poison") || queues[n] !== 0);
  return depthChart({ id: "queue-depths", title: "Queue depths (messages waiting now)",
    rows: names.map((n) => ({ label: n, value: queues[n], bad: n.endsWith("-poison") ? "bad" : "queued" })) });
}

// The last run of each timer: per-mailbox ones (delta, reconcile) as the latest over every mailbox
// and how many mailboxes' last run did not complete; the others (one run for every mailbox) as recorded.
function timers(mailboxes, status, failedTotal) {
  const timerRuns = status.timerRuns || {};
  const latest = (kind) => {
    const runs = mailboxes.map((m) => runOf(m, kind)).filter(Boolean);
    const last = runs.reduce((a, b) => (!a || String(pick(b, "startedAt")) > String(pick(a, "startedAt")) ? b : a), null);
    const stuck = runs.filter((r) => pick(r, "outcome") !== "completed").length;
    return { last, note: `${runs.length} of ${mailboxes.length} mailboxes ran; ${stuck} last run${stuck === 1 ? "" : "s"} not completed`, bad: stuck > 0 };
  };
  const expiries = mailboxes.filter((m) => m.enabled && m.subscriptionExpiry).map((m) => m.subscriptionExpiry).sort();
  const rows = [
    { name: "Delta (DELTA_SCHEDULE)", ...latest("delta") },
    { name: "Reconcile (RECONCILE_SCHEDULE)", ...latest("reconcile") },
    { name: "Dime.Scheduler → Outlook reconcile (DIME_RECONCILE_SCHEDULE)", last: status.dimeReconcile, note: "one run for every mailbox" },
    { name: "Retry of failed transactions (RETRY_SCHEDULE)", last: timerRuns.retry,
      note: `${failedTotal} failed waiting${timerRuns.retry ? `; last run retried ${pick(timerRuns.retry, "writes") ?? 0} successfully` : ""}` },
    { name: "Subscription renewal (RENEW_SCHEDULE)", last: timerRuns.renewal,
      note: expiries.length ? h("span", {}, "the earliest subscription expires ", time(expiries[0])) : "no subscription yet" },
  ];
  return table([
    { head: "Timer", cell: (r) => [r.name, h("br"), h("small", { class: r.bad ? "status-failed" : "muted" }, r.note)] },
    { head: "Last run", cell: (r) => runCell(r.last) },
    { head: "Duration", cell: (r) => (r.last ? `${pick(r.last, "durationMs") ?? "?"} ms` : "—"), class: "hide-narrow" },
  ], rows, "");
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

  // A chart's table someone opened stays open across the 15 s refresh.
  const opened = [...main.querySelectorAll("figure.chart details[open]")].map((d) => d.parentElement.id);
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
    h("h2", {}, "History"),
    h("p", { class: "muted legend" }, h("span", { class: "swatch ok" }), "succeeded ", h("span", { class: "swatch bad" }), "failed · ",
      "Each bar counts the outcomes recorded in that hour (your time) or UTC day: every time a transaction was written as ",
      "succeeded or failed, so a failure a retry resolved later counts once in each. Counting started when this version was ",
      "installed; earlier transactions are not in the charts.",
      status.history && status.history.unreadable ? h("span", { class: "status-failed" }, ` ${status.history.unreadable} counter value(s) unreadable.`) : null),
    status.history ? historyCharts(status.history) : message("error", "The history could not be read."),
    h("div", { class: "charts" }, queueChart(queues), h("figure", { class: "chart", id: "timers" },
      h("figcaption", {}, h("strong", {}, "Timers: last runs")), timers(mailboxes, status, failed.total))),
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
  for (const id of opened) if (document.getElementById(id)) document.getElementById(id).querySelector("details").open = true;
  const tick = () => {
    if (!ctx.current()) return;
    const focus = document.activeElement; // do not pull the page from under the keyboard focus
    const busy = main.contains(focus) && focus !== main && focus.id !== "auto";
    if (busy || sessionStorage.getItem("console.noRefresh") || document.visibilityState === "hidden") setTimeout(tick, REFRESH_MS);
    else render(main, ctx).catch((error) => ctx.failed(error, ctx));
  };
  setTimeout(tick, REFRESH_MS);
}
