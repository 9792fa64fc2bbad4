// Bar charts in plain SVG built with the DOM: no library, no innerHTML, nothing fetched, no inline
// style (the CSP's style-src 'self'): geometry is SVG attributes, colours are classes in style.css.
// Every bar carries a <title> with its exact numbers (hover), the <svg> an aria-label with the
// totals, and each chart a table of the same numbers for screen readers and copying.
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const W = 440; // about the drawn width of a chart on a desktop's two columns: text keeps its size
const H = 160;
const LEFT = 40;
const RIGHT = 16; // room for the last tick's text
const BOTTOM = 20;
const TOP = 8;

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

// The y axis' top: at least 4, then 1, 2, 4, 6, 8 × 10^n (so its half is a whole number too).
export function axisTop(max) {
  if (max <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 4, 6, 8, 10].map((step) => step * power).find((top) => top >= max);
}

export function outcomeTitle(label, ok, bad) {
  return `${label}: ${ok} succeeded, ${bad} failed`;
}

// Stacked bars (succeeded below in green, failed on top in red), one per bucket:
// buckets = [{ label (for titles and the table), tick (axis text or null), ok, bad }].
export function outcomeChart({ id, title, buckets, unit }) {
  const ok = buckets.reduce((n, b) => n + b.ok, 0);
  const bad = buckets.reduce((n, b) => n + b.bad, 0);
  const top = axisTop(Math.max(0, ...buckets.map((b) => b.ok + b.bad)));
  const plot = H - BOTTOM - TOP;
  const y = (value) => TOP + plot - (value / top) * plot;
  const slot = (W - LEFT - RIGHT) / buckets.length;
  const width = Math.max(2, slot * 0.72);
  const grid = [0, top / 2, top].map((value) => s("g", { class: "grid" },
    s("line", { x1: LEFT, x2: W - RIGHT, y1: y(value), y2: y(value) }),
    s("text", { x: LEFT - 4, y: y(value) + 4, "text-anchor": "end" }, value)));
  const bars = buckets.map((b, i) => {
    const x = LEFT + i * slot + (slot - width) / 2;
    return s("g", { class: "bucket", "data-ok": b.ok, "data-bad": b.bad },
      s("title", {}, outcomeTitle(b.label, b.ok, b.bad)),
      s("rect", { class: "hit", x: LEFT + i * slot, y: TOP, width: slot, height: plot }),
      b.ok ? s("rect", { class: "ok", x, width, y: y(b.ok), height: y(0) - y(b.ok) }) : null,
      b.bad ? s("rect", { class: "bad", x, width, y: y(b.ok + b.bad), height: y(b.ok) - y(b.ok + b.bad) }) : null,
      b.tick ? s("text", { class: "tick", x: x + width / 2, y: H - 5, "text-anchor": "middle" }, b.tick) : null);
  });
  const summary = `${title}: ${ok} succeeded, ${bad} failed`;
  return h("figure", { class: "chart", id },
    h("figcaption", {}, h("strong", {}, title), " ", h("span", { class: "muted" }, `${ok} succeeded, `),
      h("span", { class: bad ? "status-failed" : "muted" }, `${bad} failed`)),
    s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary }, grid, bars),
    h("details", {}, h("summary", {}, `The numbers per ${unit}`),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, unit), h("th", { scope: "col" }, "Succeeded"), h("th", { scope: "col" }, "Failed"))),
        h("tbody", {}, buckets.map((b) => h("tr", {}, h("td", {}, b.label), h("td", {}, String(b.ok)), h("td", {}, String(b.bad))))))));
}

// Horizontal bars, one per row: rows = [{ label, value (null: unknown), bad (a class) }].
export function depthChart({ id, title, rows }) {
  const top = axisTop(Math.max(0, ...rows.map((r) => r.value || 0)));
  const row = 22;
  const left = 196;
  const width = W - left - 36;
  return h("figure", { class: "chart", id },
    h("figcaption", {}, h("strong", {}, title)),
    s("svg", { viewBox: `0 0 ${W} ${rows.length * row + 4}`, role: "img",
      "aria-label": `${title}: ${rows.map((r) => `${r.label} ${r.value ?? "unknown"}`).join(", ")}` },
    rows.map((r, i) => s("g", { class: "bucket", "data-value": r.value ?? "" },
      s("title", {}, `${r.label}: ${r.value ?? "unknown"}`),
      s("text", { x: left - 6, y: i * row + 16, "text-anchor": "end" }, r.label),
      s("rect", { class: r.value ? r.bad : "track", x: left, y: i * row + 4, height: row - 8,
        width: r.value ? Math.max(2, (r.value / top) * width) : width }),
      s("text", { x: left + (r.value ? Math.max(2, (r.value / top) * width) : 0) + 6, y: i * row + 16 }, r.value ?? "?")))));
}
