// Maintenance windows: those planned (and the form that plans one), and the history of
// past ones, each with its log, read once it is opened.

import {
  PAGE_MAX,
  cancelPlannedWindow,
  getMaintenanceHistory,
  getMaintenanceWindow,
} from "./api.js";
import { confirmAction } from "./dialogs.js";
import { byId, count, el, forget, placeChildren } from "./dom.js";
import { logHead, logRow } from "./log.js";
import { renderPlanForm, setUpPlan } from "./plan.js";
import { duration, fromNow, moment, stamp, timeElement, timeRange, withinHour } from "./time.js";

/** @typedef {import("./api.js").LogEntry} LogEntry */
/** @typedef {import("./api.js").MaintenanceState} MaintenanceState */
/** @typedef {import("./api.js").Mode} Mode */
/** @typedef {import("./api.js").PastWindow} PastWindow */
/** @typedef {import("./api.js").PlannedWindow} PlannedWindow */
/** @typedef {import("./notices.js").Act} Act */
/** @typedef {import("./notices.js").Notices} Notices */

const HISTORY_STEP = 10; // windows of the history shown at first, and added by "Show more"
const WINDOW_LOG_STEP = 100; // entries of a past window's log loaded at a time

const ui = {
  scheduleTitle: byId("schedule-title", HTMLElement),
  scheduleEmpty: byId("schedule-empty", HTMLElement),
  scheduleList: byId("schedule-list", HTMLElement),
  historyTitle: byId("history-title", HTMLElement),
  historyCount: byId("history-count", HTMLElement),
  historyEmpty: byId("history-empty", HTMLElement),
  historyList: byId("history-list", HTMLElement),
  historyMore: byId("history-more", HTMLButtonElement),
};

/**
 * The history's windows, newest first; ``key`` says what they were read for.
 * @typedef {object} History
 * @property {PastWindow[]} windows
 * @property {number} total
 * @property {number} shown
 * @property {string | null} key
 *
 * A planned window's item, redrawn when ``key`` (the window, and who looks) changes.
 * @typedef {object} PlannedItem
 * @property {HTMLLIElement} node
 * @property {string} key
 * @property {HTMLSpanElement} starts when it starts, from now
 *
 * A window of the history's item, and its log once opened.
 * @typedef {object} PastItem
 * @property {PastWindow} window
 * @property {HTMLLIElement} node
 * @property {HTMLDetailsElement} details
 * @property {HTMLElement} summary
 * @property {HTMLDListElement} facts
 * @property {HTMLParagraphElement} note
 * @property {HTMLTableElement} table
 * @property {HTMLTableSectionElement} rows
 * @property {HTMLButtonElement} more
 * @property {string} [key] the window as last described
 * @property {{ entries: LogEntry[], total: number, loading: boolean }} [log] once opened
 *
 * The windows' part of the console: the history as read, and the rendered items by
 * window id, kept across refreshes so that an expanded window stays open and focus
 * stays where it was; ``act`` runs a change (cancelling a window, planning one),
 * ``failed`` reports a read that failed.
 * @typedef {object} Windows
 * @property {History} history
 * @property {Map<number, PlannedItem>} planned
 * @property {Map<number, PastItem>} past
 * @property {Act} act
 * @property {(error: unknown) => void} failed
 */

/** @returns {History} */
function freshHistory() {
  return { windows: [], total: 0, shown: HISTORY_STEP, key: null };
}

/**
 * @param {Act} act
 * @param {(error: unknown) => void} failed
 * @returns {Windows}
 */
export function createWindows(act, failed) {
  return { history: freshHistory(), planned: new Map(), past: new Map(), act, failed };
}

/**
 * Forget every window, as after signing out.
 * @param {Windows} windows
 */
export function resetWindows(windows) {
  windows.history = freshHistory();
  windows.planned.clear();
  windows.past.clear();
  ui.scheduleList.replaceChildren();
  ui.historyList.replaceChildren();
}

/**
 * Read the history again only when it may have changed: another window, a longer log
 * (posting, releasing), or a planned window gone from the schedule (it started, was
 * skipped, or was cancelled). Otherwise it stays as read.
 * @param {Windows} windows
 * @param {MaintenanceState | null} state
 * @param {PlannedWindow[]} planned
 * @param {() => boolean} stale true once a newer refresh took over
 */
export async function syncHistory(windows, state, planned, stale) {
  const key = [state ? `${state.windowId}:${state.logSize}` : "off"]
    .concat(planned.map((win) => String(win.id)))
    .join(" ");
  if (key === windows.history.key) {
    return;
  }
  const limit = Math.min(windows.history.shown, PAGE_MAX);
  const page = await getMaintenanceHistory(0, limit);
  if (stale()) {
    return;
  }
  windows.history = { ...windows.history, windows: page.windows, total: page.total, key };
}

// ---- planned windows ----------------------------------------------------------------

/**
 * @param {Windows} windows
 * @param {PlannedWindow[]} planned
 * @param {boolean} admin
 */
export function renderSchedule(windows, planned, admin) {
  ui.scheduleEmpty.hidden = planned.length > 0;
  ui.scheduleList.hidden = planned.length === 0;
  renderPlanForm(admin);
  placeChildren(
    ui.scheduleList,
    planned.map((win) => plannedItem(windows, win, admin)),
  );
  forget(windows.planned, planned);
}

/**
 * A planned window's item: when, mode, how it ends, message, who planned it, and a
 * cancel button for an ADMIN.
 * @param {Windows} windows
 * @param {PlannedWindow} win
 * @param {boolean} admin
 */
function plannedItem(windows, win, admin) {
  const start = Date.parse(win.start);
  const end = win.end === null ? null : Date.parse(win.end);
  // redrawn too when its start or end comes within the hour (shown to the second then)
  const key = JSON.stringify([win, admin, withinHour(start), end !== null && withinHour(end)]);
  let item = windows.planned.get(win.id);
  if (item === undefined || item.key !== key) {
    const whenId = `planned-${win.id}`;
    let ending = "Ends when switched off";
    if (end === null) {
      ending = "No planned end";
    } else if (win.autoEnd) {
      ending = "Ends by itself";
    }
    const starts = el("span");
    const node = el(
      "li",
      { className: "window-item" },
      el("p", { className: "window-when", id: whenId }, ...timeRange(start, end)),
      el(
        "p",
        { className: "tags" },
        el("span", { className: "tag" }, modeName(win.mode)),
        el("span", { className: "tag" }, ending),
      ),
      el("p", { className: "message-text" }, win.message),
      el(
        "p",
        { className: "window-meta" },
        "Starts ",
        starts,
        ` · planned by ${win.createdBy} on `,
        timeElement(win.createdAt, moment(win.createdAt)),
      ),
    );
    if (admin) {
      const cancel = el(
        "button",
        { type: "button", className: "btn btn-secondary btn-small", "aria-describedby": whenId },
        "Cancel window…",
      );
      cancel.addEventListener("click", () => cancelPlanned(windows, win));
      node.append(cancel);
    }
    item = { node, key, starts };
    windows.planned.set(win.id, item);
  }
  item.starts.textContent = fromNow(start);
  return item.node;
}

/**
 * @param {Windows} windows
 * @param {PlannedWindow} win
 */
async function cancelPlanned(windows, win) {
  const start = moment(Date.parse(win.start));
  const yes = await confirmAction({
    title: "Cancel this planned window?",
    text: `Maintenance will not start at ${start}: “${win.message}”`,
    ok: "Cancel window",
    tone: "btn-warning",
    dismiss: "Keep it",
  });
  if (yes) {
    await windows.act(() => cancelPlannedWindow(win.id), "Window cancelled.", ui.scheduleTitle);
  }
}

// ---- the history --------------------------------------------------------------------

/** @param {Windows} windows */
export function renderHistory(windows) {
  const { windows: shown, total } = windows.history;
  ui.historyEmpty.hidden = shown.length > 0;
  ui.historyList.hidden = shown.length === 0;
  ui.historyCount.textContent = total === 0 ? "" : count(total, "window");
  placeChildren(
    ui.historyList,
    shown.map((win) => pastItem(windows, win)),
  );
  forget(windows.past, shown);
  const more = total - shown.length;
  ui.historyMore.hidden = more <= 0;
  ui.historyMore.textContent = `Show more (${more} older)`;
}

/**
 * Read the next windows of the history, and focus the first of them.
 * @param {Windows} windows
 */
async function showMoreHistory(windows) {
  const held = windows.history;
  const offset = held.windows.length;
  held.shown = offset + HISTORY_STEP;
  try {
    const page = await getMaintenanceHistory(offset, HISTORY_STEP);
    if (windows.history !== held) {
      windows.history.key = null; // read again meanwhile, maybe short of this page: again
      return;
    }
    const known = new Set(held.windows.map((win) => win.id));
    held.windows = held.windows.concat(page.windows.filter((win) => !known.has(win.id)));
    held.total = page.total;
    renderHistory(windows);
    const [next] = page.windows;
    const first = next === undefined ? undefined : windows.past.get(next.id);
    (first ? first.summary : ui.historyTitle).focus();
  } catch (error) {
    windows.failed(error);
  }
}

/** @type {Record<PastWindow["status"], string>} */
const STATUS_NAMES = { on: "On", ended: "Ended", skipped: "Skipped" };

/**
 * A window of the history: a disclosure whose summary says what happened, and whose
 * body has the details and, once opened, its log (read then, page by page).
 * @param {Windows} windows
 * @param {PastWindow} win
 */
function pastItem(windows, win) {
  let item = windows.past.get(win.id);
  if (item === undefined) {
    const summary = el("summary");
    const facts = el("dl", { className: "facts window-facts" });
    const note = el("p", { className: "muted" });
    const rows = el("tbody");
    const table = el(
      "table",
      { className: "log-table", hidden: true },
      el("caption", { className: "visually-hidden" }, "This window's log, oldest entry first"),
      logHead(),
      rows,
    );
    const more = el("button", {
      type: "button",
      className: "btn btn-secondary log-more",
      hidden: true,
    });
    const details = el(
      "details",
      {},
      summary,
      el("div", { className: "window-body" }, facts, note, table, more),
    );
    const node = el("li", { className: "window-item" }, details);
    /** @type {PastItem} */
    const made = { window: win, node, details, summary, facts, note, table, rows, more };
    details.addEventListener("toggle", () => followWindowLog(windows, made));
    more.addEventListener("click", () => loadWindowLog(windows, made));
    windows.past.set(win.id, made);
    item = made;
  }
  item.window = win;
  const key = JSON.stringify(win);
  if (item.key !== key) {
    item.key = key;
    describeWindow(item, win);
    followWindowLog(windows, item);
  }
  return item.node;
}

/**
 * @param {PastItem} item
 * @param {PastWindow} win
 */
function describeWindow(item, win) {
  const skipped = win.status === "skipped";
  // Set by the status: a skipped window has its planned start, and an end (when it was
  // skipped); the others started, and have an end once no longer on.
  const began = /** @type {number} */ (skipped ? win.plannedStart : win.startedAt);
  const ended = /** @type {number} */ (win.endedAt);
  const who = win.userTriggered ? win.user : `the process ${win.user}`;
  const meta = [];
  if (skipped) {
    meta.push(`planned by ${win.user}`, "did not start");
  } else {
    meta.push(
      win.status === "on" ? "still on" : duration(ended - began),
      win.plannedStart === null ? `by ${who}` : `planned by ${who}`,
      modeName(win.mode),
      count(win.logSize, "message"),
    );
  }
  item.summary.replaceChildren(
    el("span", { className: `badge badge-${win.status}` }, STATUS_NAMES[win.status]),
    el("span", { className: "window-when" }, timeElement(began, moment(began))),
    el("span", { className: "window-meta" }, meta.join(" · ")),
  );

  const facts = [];
  if (skipped) {
    facts.push(fact("Planned for", ...timeRange(began, win.plannedEnd)));
    facts.push(fact("Skipped", timeElement(ended, stamp(ended))));
    facts.push(fact("Why", win.reason || "–"));
  } else {
    facts.push(fact("Started", timeElement(began, stamp(began))));
    if (win.status === "on") {
      facts.push(fact("Ended", "Still on"));
    } else {
      const by = win.endedBy === "schedule" ? "by itself, as planned" : `by ${win.endedBy}`;
      facts.push(fact("Ended", timeElement(ended, stamp(ended)), ` ${by}`));
    }
    facts.push(fact("Started by", who));
    if (win.plannedStart !== null) {
      facts.push(fact("Planned", ...timeRange(win.plannedStart, win.plannedEnd)));
    }
    if (win.releasedBy) {
      facts.push(fact("Released by", `${win.releasedBy}, from the process ${win.user}`));
    }
  }
  item.facts.replaceChildren(...facts);
}

/**
 * An open window's log is read when first shown, then kept whole while it was whole
 * (the current window's grows); one shown in part grows only on demand.
 * @param {Windows} windows
 * @param {PastItem} item
 */
function followWindowLog(windows, item) {
  const held = item.log;
  const whole = held === undefined || (!held.loading && held.entries.length === held.total);
  if (item.details.open && whole) {
    loadWindowLog(windows, item);
  } else {
    renderWindowLog(item);
  }
}

/**
 * Read the next page of a window's log.
 * @param {Windows} windows
 * @param {PastItem} item
 */
async function loadWindowLog(windows, item) {
  const held = item.log || { entries: [], total: item.window.logSize, loading: false };
  item.log = held;
  if (held.loading || held.entries.length >= Math.max(held.total, item.window.logSize)) {
    renderWindowLog(item);
    return;
  }
  held.loading = true;
  renderWindowLog(item);
  const id = item.window.id;
  try {
    const page = await getMaintenanceWindow(id, held.entries.length, WINDOW_LOG_STEP);
    if (windows.past.get(id) !== item) {
      return; // signed out, or no longer shown
    }
    held.entries.push(...page.log);
    held.total = page.total;
  } catch (error) {
    if (windows.past.get(id) === item) {
      windows.failed(error);
    }
  } finally {
    held.loading = false;
    renderWindowLog(item);
  }
}

/** @param {PastItem} item */
function renderWindowLog(item) {
  const held = item.log;
  if (held === undefined) {
    return;
  }
  const total = Math.max(held.total, item.window.logSize);
  const loaded = held.entries.length;
  item.table.hidden = loaded === 0;
  if (item.rows.childElementCount !== loaded) {
    item.rows.replaceChildren(...held.entries.map(logRow));
  }
  let note = "";
  if (held.loading) {
    note = "Loading the log…";
  } else if (total === 0) {
    note = "No log: this window did not start.";
  }
  item.note.textContent = note;
  item.note.hidden = note === "";
  item.more.hidden = held.loading || loaded >= total;
  item.more.textContent = `Show more entries (${total - loaded} more)`;
}

// ---- both ---------------------------------------------------------------------------

/**
 * @param {string} term
 * @param {...(Node | string)} value
 */
function fact(term, ...value) {
  return el("div", {}, el("dt", {}, term), el("dd", {}, ...value));
}

/** @param {Mode} mode */
const modeName = (mode) => (mode === "read-only" ? "Read-only" : "Full");

/**
 * The plan form, and "Show more" of the history.
 * @param {Windows} windows
 * @param {Notices} notices
 */
export function setUpWindows(windows, notices) {
  setUpPlan(windows, notices);
  ui.historyMore.addEventListener("click", () => showMoreHistory(windows));
}
