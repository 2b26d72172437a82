// The current maintenance's log, newest entry first, read page by page as it is shown.

import { PAGE_MAX, getMaintenanceLog } from "./api.js";
import { byId, el } from "./dom.js";
import { stamp, timeElement } from "./time.js";

/** @typedef {import("./api.js").LogEntry} LogEntry */
/** @typedef {import("./api.js").MaintenanceState} MaintenanceState */

const SHOW_STEP = 200; // log entries shown at first, and added by "Show older entries"

const ui = {
  title: byId("log-title", HTMLElement),
  count: byId("log-count", HTMLElement),
  empty: byId("log-empty", HTMLElement),
  table: byId("log-table", HTMLTableElement),
  body: byId("log-body", HTMLTableSectionElement),
  more: byId("log-more", HTMLButtonElement),
};

/**
 * The entries held, by position from the oldest (0), out of ``total``; the newest
 * ``shown`` are to be shown. ``key`` says what the table shows, redrawn only when it
 * changes.
 * @typedef {object} Log
 * @property {Map<number, LogEntry>} entries
 * @property {number} total
 * @property {number} shown
 * @property {string} key
 */

/** @returns {Log} */
export function createLog() {
  return { entries: new Map(), total: 0, shown: SHOW_STEP, key: "" };
}

/**
 * Back to a new log, as after signing in again.
 * @param {Log} log
 */
export function resetLog(log) {
  Object.assign(log, createLog());
}

/**
 * Forget the entries held, keeping what the table shows: it is redrawn once they differ.
 * @param {Log} log
 */
function forgetEntries(log) {
  log.entries.clear();
  log.total = 0;
}

/**
 * @param {LogEntry} a
 * @param {LogEntry} b
 */
const sameEntry = (a, b) => a.date === b.date && a.user === b.user && a.message === b.message;

/**
 * Keep the log entries to show: the state carries the latest 100, older ones come from
 * GET /maintenance/log pages, each fetched once. The log only grows while maintenance runs;
 * an entry that differs from the one held at its position means another maintenance.
 * Stops reading once ``stale()``: a newer refresh took over.
 * @param {Log} log
 * @param {MaintenanceState | null} state
 * @param {() => boolean} stale
 */
export async function syncLog(log, state, stale) {
  if (state === null) {
    forgetEntries(log);
    return;
  }
  const total = state.logSize;
  const first = total - state.log.length;
  const changed =
    total < log.total ||
    state.log.some((entry, i) => {
      const held = log.entries.get(first + i);
      return held !== undefined && !sameEntry(held, entry);
    });
  if (changed) {
    forgetEntries(log);
    log.shown = SHOW_STEP;
  }
  state.log.forEach((entry, i) => log.entries.set(first + i, entry));
  log.total = total;

  for (let position = Math.max(0, total - log.shown); position < total; position += 1) {
    if (log.entries.has(position)) {
      continue;
    }
    let end = position;
    while (end < total && !log.entries.has(end) && end - position < PAGE_MAX) {
      end += 1;
    }
    const page = await getMaintenanceLog(position, end - position);
    if (stale()) {
      return;
    }
    if (page.log.length === 0) {
      break; // maintenance ended or restarted meanwhile: the next refresh sorts it out
    }
    page.log.forEach((entry, i) => log.entries.set(page.offset + i, entry));
  }
}

/**
 * The log's card: the entries held of the newest ``shown``, while maintenance is ``on``.
 * @param {Log} log
 * @param {boolean} on
 */
export function renderLog(log, on) {
  const total = on ? log.total : 0;
  const from = Math.max(0, total - log.shown);
  let held = 0;
  for (let i = from; i < total; i += 1) {
    held += log.entries.has(i) ? 1 : 0;
  }
  const newest = log.entries.get(total - 1);
  const key = `${total}|${from}|${held}|${newest ? newest.date : ""}`;
  if (key === log.key) {
    return;
  }
  log.key = key;
  ui.empty.hidden = on;
  ui.table.hidden = !on;
  ui.count.textContent = on ? (total === 1 ? "1 entry" : `${total} entries`) : "";
  const rows = document.createDocumentFragment();
  for (let i = total - 1; i >= from; i -= 1) {
    const entry = log.entries.get(i);
    if (entry !== undefined) {
      rows.append(logRow(entry));
    }
  }
  ui.body.replaceChildren(rows);
  ui.more.hidden = from === 0;
  ui.more.textContent = `Show older entries (${from} more)`;
}

/**
 * "Show older entries": read by ``refresh``; once the oldest is shown, focus moves from
 * the button, now hidden, to the log's title.
 * @param {Log} log
 * @param {() => Promise<void>} refresh
 */
export function setUpLog(log, refresh) {
  ui.more.addEventListener("click", async () => {
    log.shown += SHOW_STEP;
    await refresh();
    if (ui.more.hidden) {
      ui.title.focus();
    }
  });
}

/**
 * One row of a log table: time, user, message.
 * @param {LogEntry} entry
 */
export function logRow(entry) {
  return el(
    "tr",
    {},
    el("td", { className: "col-time" }, timeElement(entry.date, stamp(entry.date))),
    el("td", { className: "col-user" }, entry.user),
    el("td", { className: "message-text" }, entry.message),
  );
}

/** A copy of the log table's head, for another table of log entries. */
export function logHead() {
  const head = ui.table.tHead;
  if (head === null) {
    throw new Error("index.html's log table has no head");
  }
  return /** @type {HTMLTableSectionElement} */ (head.cloneNode(true));
}
