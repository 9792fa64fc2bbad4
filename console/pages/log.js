// Log: the recent delta/reconcile (and Dime.Scheduler reconcile) run records and the open failures, newest first, and a link to
// Application Insights (CONSOLE_APPINSIGHTS_RESOURCE_ID) for everything else.
import { api, listAll, part } from "../api.js";
import { h, link, message, pick, show, table, time } from "../dom.js";
import { statusCell } from "./transactions.js";

export async function render(main, ctx) {
  const [status, failures, settings] = await Promise.all([
    api("status"), listAll("transactions", { status: "failed" }, 200), api("console"),
  ]);
  if (!ctx.current()) return;
  const records = [];
  const runRecord = (row, what) => ({ at: pick(row, "startedAt"), what, outcome: pick(row, "outcome"),
    detail: `${pick(row, "changes") ?? 0} changes, ${pick(row, "writes") ?? 0} writes, ${pick(row, "deletes") ?? 0} deletes, ` +
      `${pick(row, "errors") ?? 0} errors, ${pick(row, "durationMs") ?? "?"} ms ${pick(row, "breaker") || pick(row, "lastError") || ""}` });
  for (const m of status.mailboxes || []) {
    for (const row of m.syncState || []) {
      const kind = pick(row, "rowKey");
      if (!String(kind).endsWith("-run")) continue;
      records.push(runRecord(row, `${kind} of ${m.upn || m.mailboxId}`));
    }
  }
  if (status.dimeReconcile) records.push(runRecord(status.dimeReconcile, "dime-reconcile of every mailbox"));
  for (const t of failures.items) {
    records.push({ at: t.updatedAt || t.createdAt, what: link(`#/transactions/${part(t.id)}`, `${t.operation} ${t.direction}`),
      outcome: statusCell(t.status), detail: `${t.errorCode || ""} ${t.message || ""}` });
  }
  records.sort((a, b) => (String(a.at) < String(b.at) ? 1 : -1));
  show(main,
    h("h1", {}, "Log"),
    settings.applicationInsightsUrl
      ? h("p", {}, "Everything else (every function run, traces, exceptions): ",
        h("a", { href: settings.applicationInsightsUrl, target: "_blank", rel: "noopener noreferrer" }, "open Application Insights"), ".")
      : message("status", "Set CONSOLE_APPINSIGHTS_RESOURCE_ID to the Application Insights resource id to get a link to the full logs here."),
    table([
      { head: "When", cell: (r) => time(r.at) },
      { head: "What", cell: (r) => r.what },
      { head: "Outcome", cell: (r) => r.outcome },
      { head: "Detail", cell: (r) => r.detail, class: "wrap" },
    ], records, "No run or failure recorded yet: runs appear after the first delta timer."));
}
