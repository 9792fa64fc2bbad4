// Building the page without innerHTML: every piece of data becomes a text node, so a subject such
// as <img src=x onerror=alert(1)> is shown as text and never parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function show(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

// A time in the browser's zone, with the UTC value on hover and in the datetime attribute.
export function time(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  const moment = new Date(value);
  if (Number.isNaN(moment.getTime())) return h("span", {}, String(value));
  const utc = moment.toISOString().replace(".000Z", "Z");
  return h("time", { datetime: utc, title: `${utc} (UTC)` }, LOCAL.format(moment));
}

export function message(kind, ...text) {
  return h("p", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

export function table(columns, rows, empty) {
  if (!rows.length) return message("empty", empty);
  return h("div", { class: "scroll" },
    labelCells(h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.head)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(row)))))))));
}

// Each cell gets its column's header as data-label: on a phone a table can be drawn as stacked
// rows (style.css), each value named ("Attempts 5"), without a horizontal scroll.
export function labelCells(tableNode) {
  const heads = [...tableNode.querySelectorAll("thead th")].map((th) => th.textContent.replace(/[▲▼]/g, "").trim());
  for (const row of tableNode.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => { if (heads[i]) cell.dataset.label = heads[i]; });
  }
  return tableNode;
}

// A field from the API, whichever casing it comes in (status rows are PascalCase table columns).
export function pick(row, name) {
  if (!row) return undefined;
  if (row[name] !== undefined) return row[name];
  const pascal = name[0].toUpperCase() + name.slice(1);
  return row[pascal];
}

export function confirmDialog(text, confirmLabel, extra) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-label": "Confirm" },
      h("p", {}, text), extra || null,
      h("div", { class: "bar" },
        h("button", { type: "button", class: "primary", onclick: () => { dialog.close(); resolve(true); } }, confirmLabel),
        h("button", { type: "button", onclick: () => { dialog.close(); resolve(false); } }, "Cancel")));
    dialog.addEventListener("cancel", () => resolve(false));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function link(href, ...text) {
  return h("a", { href }, ...text);
}

// A person: the display name with the UPN below it (and both, with the mailbox id, on hover); the
// mailbox id alone for a row that names nobody we know.
export function person(row) {
  const name = pick(row, "personName");
  const upn = pick(row, "upn");
  const id = pick(row, "mailboxId");
  const hover = [name, upn, id].filter(Boolean).join("\n");
  if (!name && !upn) return h("span", { class: "person", title: hover || null }, id || h("span", { class: "muted" }, "—"));
  return h("span", { class: "person", title: hover }, name || upn, name && upn ? h("small", { class: "upn" }, upn) : null);
}

// A subject as the board or the calendar shows it (a private event's is the masked one we stored).
export function subject(value) {
  return value ? h("span", { class: "subject" }, value) : h("span", { class: "muted" }, "—");
}

const DAY = new Intl.DateTimeFormat(undefined, { dateStyle: "full" });

// Whether a row matches a search: every word in its person, UPN, subject or start (the UTC date as
// 2026-11-24, or the local one as this browser writes it, e.g. "Tuesday, 24 November 2026").
export function matches(row, search) {
  const words = String(search || "").toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const start = pick(row, "start");
  const moment = start ? new Date(start) : null;
  const local = moment && !Number.isNaN(moment.getTime()) ? [LOCAL.format(moment), DAY.format(moment)] : [];
  const text = [pick(row, "personName"), pick(row, "upn"), pick(row, "mailboxId"), pick(row, "subject"), start, ...local]
    .filter(Boolean).join(" ").toLowerCase();
  return words.every((word) => text.includes(word));
}
