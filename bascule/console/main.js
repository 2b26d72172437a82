// Bascule's operator console: the public REST API, same origin, no build step.

import {
  ApiError,
  PAGE_MAX,
  cancelPlannedWindow,
  disableMaintenance,
  enableMaintenance,
  getAuthStatus,
  getMaintenanceHistory,
  getMaintenanceLog,
  getMaintenanceState,
  getMaintenanceWindow,
  listPlannedWindows,
  login,
  logout,
  planWindow,
  releaseMaintenance,
  updateMaintenance,
} from "./api.js";
import { el, placeChildren } from "./dom.js";
import {
  ago,
  at,
  clock,
  duration,
  fromNow,
  localTime,
  localValue,
  moment,
  setTime,
  stamp,
  timeElement,
  timeRange,
} from "./time.js";

const POLL_MS = 3000;
const SHOW_STEP = 200; // log entries shown at first, and added by "Show older entries"
const ANNOUNCE_MS = 8000; // how long a success message stays on screen
const HISTORY_STEP = 10; // windows of the history shown at first, and added by "Show more"
const WINDOW_LOG_STEP = 100; // entries of a past window's log loaded at a time

const $ = (id) => document.getElementById(id);
const ui = {
  account: $("account"),
  accountName: $("account-name"),
  accountRole: $("account-role"),
  signOut: $("sign-out"),
  alert: $("alert"),
  status: $("status"),
  loading: $("loading"),
  signinView: $("signin-view"),
  signinTitle: $("signin-title"),
  signinForm: $("signin-form"),
  username: $("username"),
  password: $("password"),
  consoleView: $("console-view"),
  consoleTitle: $("console-title"),
  refreshed: $("refreshed"),
  stateTitle: $("state-title"),
  stateBadge: $("state-badge"),
  stateSummary: $("state-summary"),
  stateNext: $("state-next"),
  leaseWarning: $("lease-warning"),
  leaseWarningText: $("lease-warning-text"),
  leaseWarningNext: $("lease-warning-next"),
  release: $("release"),
  stateDetails: $("state-details"),
  factBy: $("fact-by"),
  factSince: $("fact-since"),
  factAgo: $("fact-ago"),
  factEndBlock: $("fact-end-block"),
  factEnd: $("fact-end"),
  factHolderBlock: $("fact-holder-block"),
  factHolder: $("fact-holder"),
  grid: $("grid"),
  main: $("main"),
  factMessage: $("fact-message"),
  progress: $("progress"),
  progressText: $("progress-text"),
  readonlyNote: $("readonly-note"),
  actions: $("actions"),
  enableBlock: $("enable-block"),
  enable: $("enable"),
  updateForm: $("update-form"),
  updateMessage: $("update-message"),
  updateProgress: $("update-progress"),
  disableBlock: $("disable-block"),
  disable: $("disable"),
  automaticNote: $("automatic-note"),
  logTitle: $("log-title"),
  logCount: $("log-count"),
  logEmpty: $("log-empty"),
  logTable: $("log-table"),
  logBody: $("log-body"),
  logMore: $("log-more"),
  scheduleTitle: $("schedule-title"),
  scheduleEmpty: $("schedule-empty"),
  scheduleList: $("schedule-list"),
  planForm: $("plan-form"),
  planStart: $("plan-start"),
  planEnd: $("plan-end"),
  planTimeHint: $("plan-time-hint"),
  planMessage: $("plan-message"),
  planReadOnly: $("plan-read-only"),
  planAutoEnd: $("plan-auto-end"),
  historyTitle: $("history-title"),
  historyCount: $("history-count"),
  historyEmpty: $("history-empty"),
  historyList: $("history-list"),
  historyMore: $("history-more"),
  confirm: $("confirm"),
  confirmForm: $("confirm-form"),
  confirmTitle: $("confirm-title"),
  confirmText: $("confirm-text"),
  confirmField: $("confirm-field"),
  confirmLabel: $("confirm-label"),
  confirmInput: $("confirm-input"),
  confirmHint: $("confirm-hint"),
  confirmError: $("confirm-error"),
  confirmCancel: $("confirm-cancel"),
  confirmOk: $("confirm-ok"),
};

let me = null; // {username, roles} while signed in
let timer = 0;
let generation = 0; // bumped by every refresh: an older one's answer is dropped
let busy = false;
let announceTimer = 0;
let log = freshLog();
let logKey = "";
let current = null; // the state last rendered
let history = freshHistory();
let windows = freshWindows();

function freshLog() {
  return { entries: new Map(), total: 0, shown: SHOW_STEP };
}

/** The history's windows, newest first; ``key`` says what they were read for. */
function freshHistory() {
  return { windows: [], total: 0, shown: HISTORY_STEP, key: null };
}

/** The rendered items, by window id: the planned ones, and those of the history with
 * the part of their log loaded so far. Kept across refreshes, so that an expanded
 * window stays open and focus stays where it was. */
function freshWindows() {
  return { planned: new Map(), past: new Map() };
}

// ---- notices ------------------------------------------------------------

/** Show an error; ``kind`` "connection" marks one that the next good refresh clears. */
function showAlert(message, kind = "") {
  if (kind !== "connection") {
    announce(""); // a success message next to an error would contradict it
  }
  ui.alert.dataset.kind = kind;
  if (ui.alert.textContent !== message) {
    ui.alert.textContent = message;
  }
}

function clearAlert() {
  ui.alert.dataset.kind = "";
  ui.alert.textContent = "";
}

/** Say that something worked, in a polite live region shown for a few seconds. */
function announce(message) {
  clearTimeout(announceTimer);
  ui.status.textContent = message;
  if (message) {
    announceTimer = setTimeout(() => {
      ui.status.textContent = "";
    }, ANNOUNCE_MS);
  }
}

/** Report a failed call; authentication required (a 401, or a 403 with code 100 for a
 * session that ended) means: sign in again. */
function failed(error) {
  if (error instanceof ApiError && (error.status === 401 || error.code === 100)) {
    sessionEnded();
    return;
  }
  if (error instanceof ApiError) {
    showAlert(error.message, error.status === 0 ? "connection" : "");
  } else {
    showAlert(`Unexpected error: ${error}`);
  }
}

// ---- views --------------------------------------------------------------

function showSignIn() {
  stopPolling();
  me = null;
  log = freshLog();
  logKey = "";
  current = null;
  history = freshHistory();
  windows = freshWindows();
  ui.scheduleList.replaceChildren();
  ui.historyList.replaceChildren();
  ui.loading.hidden = true;
  ui.account.hidden = true;
  ui.consoleView.hidden = true;
  ui.signinView.hidden = false;
  ui.main.classList.add("is-signin");
  document.title = "Sign in · Bascule console";
}

function sessionEnded() {
  const wasSignedIn = me !== null;
  showSignIn();
  announce("");
  showAlert(
    wasSignedIn
      ? "Your session has ended. Sign in again to continue."
      : "Sign in to see the maintenance state.",
  );
  ui.password.value = "";
  (ui.username.value ? ui.password : ui.username).focus();
}

function signedIn(status) {
  me = { username: status.username, roles: status.roles || [] };
  ui.accountName.textContent = me.username;
  ui.accountRole.textContent = isAdmin() ? "Administrator" : "Read-only";
  ui.accountRole.className = isAdmin() ? "role role-admin" : "role";
  ui.loading.hidden = true;
  ui.signinView.hidden = true;
  ui.main.classList.remove("is-signin");
  ui.account.hidden = false;
  ui.consoleView.hidden = false;
  return refresh();
}

function isAdmin() {
  return me !== null && me.roles.includes("ADMIN");
}

// ---- the state ----------------------------------------------------------

function stopPolling() {
  clearTimeout(timer);
  timer = 0;
  generation += 1;
}

/** Read the state, the log, the planned windows and (when they changed) the history
 * now, render them, and poll again in POLL_MS. */
async function refresh() {
  if (me === null) {
    return;
  }
  stopPolling();
  const mine = generation;
  try {
    const [state, planned] = await Promise.all([getMaintenanceState(), listPlannedWindows()]);
    if (mine !== generation) {
      return;
    }
    await syncLog(state, mine);
    if (mine !== generation) {
      return;
    }
    await syncHistory(state, planned, mine);
    if (mine !== generation) {
      return;
    }
    render(state, planned);
    if (ui.alert.dataset.kind === "connection") {
      clearAlert();
    }
  } catch (error) {
    if (mine !== generation) {
      return;
    }
    failed(error);
  } finally {
    if (mine === generation && me !== null) {
      timer = setTimeout(refresh, POLL_MS);
    }
  }
}

const sameEntry = (a, b) => a.date === b.date && a.user === b.user && a.message === b.message;

/**
 * Keep the log entries to show: the state carries the latest 100, older ones come from
 * GET /maintenance/log pages, each fetched once. The log only grows while maintenance runs;
 * an entry that differs from the one held at its position means another maintenance.
 */
async function syncLog(state, mine) {
  if (state === null) {
    log = { ...freshLog(), shown: log.shown };
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
    log = freshLog();
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
    if (mine !== generation) {
      return;
    }
    if (page.log.length === 0) {
      break; // maintenance ended or restarted meanwhile: the next refresh sorts it out
    }
    page.log.forEach((entry, i) => log.entries.set(page.offset + i, entry));
  }
}

/**
 * Read the history again only when it may have changed: another window, a longer log
 * (posting, releasing), or a planned window gone from the schedule (it started, was
 * skipped, or was cancelled). Otherwise it stays as read.
 */
async function syncHistory(state, planned, mine) {
  const key = [state ? `${state.windowId}:${state.logSize}` : "off"]
    .concat(planned.map((win) => win.id))
    .join(" ");
  if (key === history.key) {
    return;
  }
  const limit = Math.min(history.shown, PAGE_MAX);
  const page = await getMaintenanceHistory(0, limit);
  if (mine !== generation) {
    return;
  }
  history = { ...history, windows: page.windows, total: page.total, key };
}

function render(state, planned) {
  current = state;
  const on = state !== null;
  const automatic = on && !state.userTriggered;
  const admin = isAdmin();

  ui.refreshed.textContent = clock(Date.now());
  ui.refreshed.dateTime = new Date().toISOString();
  ui.stateBadge.textContent = on ? (automatic ? "On · automatic" : "On") : "Off";
  ui.stateBadge.className = on ? "badge badge-on" : "badge badge-off";
  ui.stateDetails.hidden = !on;
  ui.readonlyNote.hidden = admin;
  document.title = `${on ? "Maintenance on" : "Maintenance off"} · Bascule console`;

  if (!on) {
    ui.stateSummary.textContent = "Maintenance is off: the service answers requests normally.";
  } else {
    const readOnly =
      state.mode === "read-only"
        ? " Read-only: GET, HEAD and OPTIONS requests still go through."
        : "";
    const released = state.releasedFrom;
    let summary = `Maintenance is on, enabled by ${state.user}.`;
    if (automatic) {
      summary = `Maintenance is on, automatic, by process ${state.user}.`;
    } else if (released) {
      summary =
        `Maintenance is on, held by ${state.user}, ` + `released from the process ${released}.`;
    }
    ui.stateSummary.textContent = summary + readOnly;
    const starter = automatic ? state.user : released;
    ui.factBy.textContent = starter ? `Automatic, by process ${starter}` : state.user;
    setTime(ui.factSince, state.startedAt, stamp(state.startedAt));
    ui.factAgo.textContent = ago(state.startedAt);
    const latest = state.log[state.log.length - 1];
    ui.factMessage.textContent = latest ? latest.message : "–";
    if (state.progressPercent === null || state.progressPercent === undefined) {
      ui.progress.removeAttribute("value");
      ui.progressText.textContent = "unknown";
    } else {
      ui.progress.value = state.progressPercent;
      ui.progressText.textContent = `${state.progressPercent}%`;
    }
  }
  renderPlannedEnd(on ? state.plannedEnd : null, on && state.autoEnd);
  renderHolder(state, admin);
  const next = planned[0];
  ui.stateNext.hidden = next === undefined;
  if (next) {
    const start = Date.parse(next.start);
    ui.stateNext.replaceChildren(
      "Next planned window: ",
      timeElement(start, moment(start)),
      ` (${fromNow(start)}).`,
    );
  }

  ui.actions.hidden = !(admin && on && !automatic);
  ui.grid.classList.toggle("grid-single", ui.actions.hidden);
  ui.enableBlock.hidden = !(admin && !on);
  ui.disableBlock.hidden = !(admin && on && !automatic);
  ui.automaticNote.hidden = !(admin && automatic);
  if (automatic) {
    const command = document.createElement("code");
    command.textContent = `bascule maintenance off --process ${state.user}`;
    ui.automaticNote.replaceChildren(
      `Started automatically by the process ${state.user}: only that process can update ` +
        "or end it, not this console. On the server, an operator can end it with ",
      command,
      ".",
    );
  }
  renderLog(on);
  renderSchedule(planned, admin);
  renderHistory();
}

/** When a planned window is to end (by itself, with autoEnd): ahead, or overrunning
 * once past. */
function renderPlannedEnd(end, autoEnd) {
  ui.factEndBlock.hidden = end === null;
  if (end === null) {
    return;
  }
  const over = end <= Date.now();
  ui.factEnd.classList.toggle("overrun", over);
  ui.factEnd.replaceChildren(
    over ? "Overrunning since " : autoEnd ? "Ends by itself at " : "Planned to end at ",
    timeElement(end, at(end)),
    over ? ` (${ago(end)})` : ` (${fromNow(end)})`,
  );
}

/** Who holds maintenance: a process renewing its lease, one that went silent (with
 * the release for an ADMIN), or the operator it was released to. */
function renderHolder(state, admin) {
  const lease = state === null ? null : state.lease;
  const released = state === null ? null : state.releasedFrom;
  const dead = lease !== null && !lease.alive;
  ui.factHolderBlock.hidden = lease === null && !released;
  if (lease !== null) {
    ui.factHolder.replaceChildren(
      `Held by the process ${state.user}, `,
      lease.alive
        ? `alive (renewed ${ago(lease.renewedAt, { fine: true })})`
        : `silent since ${at(lease.renewedAt)}`,
    );
  } else if (released) {
    ui.factHolder.textContent = `Released from the process ${released}, to ${state.user}`;
  }
  ui.leaseWarning.hidden = !dead;
  ui.release.hidden = !(admin && dead);
  if (dead) {
    ui.leaseWarningText.replaceChildren(
      `The process ${state.user} stopped answering at `,
      timeElement(lease.renewedAt, at(lease.renewedAt)),
      ` (${ago(lease.renewedAt)}).`,
    );
    ui.leaseWarningNext.textContent =
      `It has not renewed its ${lease.ttl} s lease since: maintenance stays on, and its ` +
      "work may be half done. " +
      (admin
        ? "Once the service is checked, release it: it becomes yours, to update and disable."
        : "An administrator can release it once the service is checked.");
  }
}

// ---- planned windows and the history --------------------------------------

function renderSchedule(planned, admin) {
  ui.scheduleEmpty.hidden = planned.length > 0;
  ui.scheduleList.hidden = planned.length === 0;
  ui.planForm.hidden = !admin;
  const now = localValue(Date.now());
  ui.planStart.min = now;
  ui.planEnd.min = ui.planStart.value || now;
  placeChildren(
    ui.scheduleList,
    planned.map((win) => plannedItem(win, admin)),
  );
  forget(windows.planned, planned);
}

/** A planned window's item: when, mode, how it ends, message, who planned it, and a
 * cancel button for an ADMIN. */
function plannedItem(win, admin) {
  const start = Date.parse(win.start);
  const key = JSON.stringify([win, admin]);
  let item = windows.planned.get(win.id);
  if (item === undefined || item.key !== key) {
    const end = win.end === null ? null : Date.parse(win.end);
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
      cancel.addEventListener("click", () => cancelPlanned(win));
      node.append(cancel);
    }
    item = { node, key, starts };
    windows.planned.set(win.id, item);
  }
  item.starts.textContent = fromNow(start);
  return item.node;
}

function renderHistory() {
  const shown = history.windows;
  ui.historyEmpty.hidden = shown.length > 0;
  ui.historyList.hidden = shown.length === 0;
  ui.historyCount.textContent =
    history.total === 0 ? "" : history.total === 1 ? "1 window" : `${history.total} windows`;
  placeChildren(ui.historyList, shown.map(pastItem));
  forget(windows.past, shown);
  const more = history.total - shown.length;
  ui.historyMore.hidden = more <= 0;
  ui.historyMore.textContent = `Show more (${more} older)`;
}

const STATUS_NAMES = { on: "On", ended: "Ended", skipped: "Skipped" };

/** A window of the history: a disclosure whose summary says what happened, and whose
 * body has the details and, once opened, its log (read then, page by page). */
function pastItem(win) {
  let item = windows.past.get(win.id);
  if (item === undefined) {
    const rows = el("tbody");
    item = {
      summary: el("summary"),
      facts: el("dl", { className: "facts window-facts" }),
      note: el("p", { className: "muted" }),
      table: el(
        "table",
        { className: "log-table", hidden: true },
        el("caption", { className: "visually-hidden" }, "This window's log, oldest entry first"),
        ui.logTable.tHead.cloneNode(true), // the same columns as the current log
        rows,
      ),
      rows,
      more: el("button", {
        type: "button",
        className: "btn btn-secondary log-more",
        hidden: true,
      }),
      key: null,
      log: null, // {entries, total, loading} once opened
    };
    item.details = el(
      "details",
      {},
      item.summary,
      el("div", { className: "window-body" }, item.facts, item.note, item.table, item.more),
    );
    item.node = el("li", { className: "window-item" }, item.details);
    item.details.addEventListener("toggle", () => followWindowLog(item));
    item.more.addEventListener("click", () => loadWindowLog(item));
    windows.past.set(win.id, item);
  }
  item.window = win;
  const key = JSON.stringify(win);
  if (item.key !== key) {
    item.key = key;
    describeWindow(item, win);
    followWindowLog(item);
  }
  return item.node;
}

function describeWindow(item, win) {
  const skipped = win.status === "skipped";
  const began = skipped ? win.plannedStart : win.startedAt;
  const who = win.userTriggered ? win.user : `the process ${win.user}`;
  const meta = [];
  if (skipped) {
    meta.push(`planned by ${win.user}`, "did not start");
  } else {
    meta.push(
      win.status === "on" ? "still on" : duration(win.endedAt - win.startedAt),
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
    facts.push(fact("Planned for", ...timeRange(win.plannedStart, win.plannedEnd)));
    facts.push(fact("Skipped", timeElement(win.endedAt, stamp(win.endedAt))));
    facts.push(fact("Why", win.reason || "–"));
  } else {
    facts.push(fact("Started", timeElement(win.startedAt, stamp(win.startedAt))));
    if (win.status === "on") {
      facts.push(fact("Ended", "Still on"));
    } else {
      const by = win.endedBy === "schedule" ? "by itself, as planned" : `by ${win.endedBy}`;
      facts.push(fact("Ended", timeElement(win.endedAt, stamp(win.endedAt)), ` ${by}`));
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

/** An open window's log is read when first shown, then kept whole while it was whole
 * (the current window's grows); one shown in part grows only on demand. */
function followWindowLog(item) {
  const held = item.log;
  const whole = held === null || (!held.loading && held.entries.length === held.total);
  if (item.details.open && whole) {
    loadWindowLog(item);
  } else {
    renderWindowLog(item);
  }
}

/** Read the next page of a window's log. */
async function loadWindowLog(item) {
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
      failed(error);
    }
  } finally {
    held.loading = false;
    renderWindowLog(item);
  }
}

function renderWindowLog(item) {
  const held = item.log;
  if (held === null) {
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

/** Forget the rendered items of windows no longer listed. */
function forget(items, listed) {
  const ids = new Set(listed.map((win) => win.id));
  for (const id of items.keys()) {
    if (!ids.has(id)) {
      items.delete(id);
    }
  }
}

// ---- elements -------------------------------------------------------------

function fact(term, ...value) {
  return el("div", {}, el("dt", {}, term), el("dd", {}, ...value));
}

/** One row of a log table: time, user, message. */
function logRow(entry) {
  return el(
    "tr",
    {},
    el("td", { className: "col-time" }, timeElement(entry.date, stamp(entry.date))),
    el("td", { className: "col-user" }, entry.user),
    el("td", { className: "message-text" }, entry.message),
  );
}

const modeName = (mode) => (mode === "read-only" ? "Read-only" : "Full");

const count = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

function renderLog(on) {
  const total = on ? log.total : 0;
  const from = Math.max(0, total - log.shown);
  let held = 0;
  for (let i = from; i < total; i += 1) {
    held += log.entries.has(i) ? 1 : 0;
  }
  const newest = log.entries.get(total - 1);
  const key = `${total}|${from}|${held}|${newest ? newest.date : ""}`;
  if (key === logKey) {
    return;
  }
  logKey = key;
  ui.logEmpty.hidden = on;
  ui.logTable.hidden = !on;
  ui.logCount.textContent = on ? (total === 1 ? "1 entry" : `${total} entries`) : "";
  const rows = document.createDocumentFragment();
  for (let i = total - 1; i >= from; i -= 1) {
    const entry = log.entries.get(i);
    if (entry !== undefined) {
      rows.append(logRow(entry));
    }
  }
  ui.logBody.replaceChildren(rows);
  ui.logMore.hidden = from === 0;
  ui.logMore.textContent = `Show older entries (${from} more)`;
}

// ---- confirmation -------------------------------------------------------

/** Ask before a consequential action, in a modal dialog; resolves to true when confirmed. */
function confirmAction(question) {
  if (typeof ui.confirm.showModal !== "function") {
    return Promise.resolve(window.confirm(`${question.title}\n\n${question.text}`));
  }
  return openDialog(question, null);
}

/**
 * Ask before a consequential action for a text (``field``: its label, hint, and what to
 * say when it is left empty), in the same dialog; resolves to the text, trimmed, or to
 * null when cancelled. The text typed is kept for the next time until ``clearAnswer``.
 */
async function ask(question, field) {
  if (typeof ui.confirm.showModal !== "function") {
    const answer = window.prompt(`${question.title}\n\n${question.text}\n\n${field.label}`);
    return answer && answer.trim() ? answer.trim() : null;
  }
  return (await openDialog(question, field)) ? ui.confirmInput.value.trim() : null;
}

function clearAnswer() {
  ui.confirmInput.value = "";
}

function openDialog({ title, text, ok, tone, dismiss = "Cancel" }, field) {
  ui.confirmTitle.textContent = title;
  ui.confirmText.textContent = text;
  ui.confirmOk.textContent = ok;
  ui.confirmOk.className = `btn ${tone}`;
  ui.confirmCancel.textContent = dismiss;
  ui.confirmField.hidden = field === null;
  if (field !== null) {
    ui.confirmLabel.textContent = field.label;
    ui.confirmHint.textContent = field.hint;
    ui.confirmInput.dataset.missing = field.missing;
    ui.confirmInput.removeAttribute("aria-invalid");
    ui.confirmError.textContent = "";
  }
  ui.confirm.returnValue = "";
  return new Promise((resolve) => {
    ui.confirm.addEventListener("close", () => resolve(ui.confirm.returnValue === "confirm"), {
      once: true,
    });
    ui.confirm.showModal();
    if (field !== null) {
      ui.confirmInput.focus();
    }
  });
}

// The dialog's text is needed to confirm: refused, it stays open and says why.
ui.confirmForm.addEventListener("submit", (event) => {
  if (ui.confirmField.hidden || event.submitter !== ui.confirmOk) {
    return;
  }
  if (!ui.confirmInput.value.trim()) {
    event.preventDefault();
    refuse(ui.confirmInput, ui.confirmInput.dataset.missing);
  }
});

// ---- actions ------------------------------------------------------------

/** Mark ``field`` invalid, say why (in the dialog for the dialog's field, else as the
 * page's alert), and focus it. */
function refuse(field, message) {
  field.setAttribute("aria-invalid", "true");
  if (field === ui.confirmInput) {
    ui.confirmError.textContent = message;
  } else {
    showAlert(message);
  }
  field.focus();
}

/** Run one change; announce ``success``, or show the error; refresh either way. */
async function act(change, success, focusAfter) {
  if (busy) {
    return false;
  }
  busy = true;
  clearAlert();
  announce("");
  let done = false;
  try {
    await change();
    announce(success);
    done = true;
  } catch (error) {
    failed(error);
  } finally {
    busy = false;
  }
  await refresh();
  if (done && focusAfter && me !== null) {
    focusAfter.focus();
  }
  return done;
}

ui.signinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (busy) {
    return;
  }
  const username = ui.username.value.trim();
  const password = ui.password.value;
  ui.username.removeAttribute("aria-invalid");
  ui.password.removeAttribute("aria-invalid");
  if (!username || !password) {
    refuse(username ? ui.password : ui.username, "Enter your user name and your password.");
    return;
  }
  busy = true;
  clearAlert();
  announce("");
  try {
    const status = await login(username, password);
    ui.password.value = "";
    busy = false;
    await signedIn(status);
    ui.consoleTitle.focus();
  } catch (error) {
    busy = false;
    showAlert(error.message);
    ui.password.select();
    ui.password.focus();
  }
});

ui.signOut.addEventListener("click", async () => {
  stopPolling();
  try {
    await logout();
  } catch {
    // Signed out here anyway; the session expires on its own.
  }
  showSignIn();
  clearAlert();
  announce("You are signed out.");
  ui.signinTitle.focus();
});

ui.enable.addEventListener("click", async () => {
  const yes = await confirmAction({
    title: "Enable maintenance?",
    text:
      "Every request to the service will be answered 503 Service Unavailable " +
      "until maintenance is disabled.",
    ok: "Enable maintenance",
    tone: "btn-warning",
  });
  if (yes) {
    await act(enableMaintenance, "Maintenance is on.", ui.stateTitle);
  }
});

ui.disable.addEventListener("click", async () => {
  const yes = await confirmAction({
    title: "Disable maintenance?",
    text: "The service will answer requests again, and this maintenance's log is closed.",
    ok: "Disable maintenance",
    tone: "btn-success",
  });
  if (yes) {
    await act(disableMaintenance, "Maintenance is off.", ui.stateTitle);
  }
});

ui.updateForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = ui.updateMessage.value;
  const rawProgress = ui.updateProgress.value.trim();
  ui.updateMessage.removeAttribute("aria-invalid");
  ui.updateProgress.removeAttribute("aria-invalid");
  const body = {};
  if (message.trim()) {
    body.message = message;
  }
  if (rawProgress !== "" || ui.updateProgress.validity.badInput) {
    const value = Number(rawProgress);
    if (!/^\d{1,3}$/.test(rawProgress) || value > 100) {
      refuse(ui.updateProgress, "The progress must be a whole number from 0 to 100.");
      return;
    }
    body.progressPercentage = value;
  }
  if (Object.keys(body).length === 0) {
    refuse(ui.updateMessage, "Enter a message, a progress, or both.");
    return;
  }
  const posted = await act(() => updateMaintenance(body), "Update posted.");
  if (posted) {
    ui.updateMessage.value = "";
    ui.updateProgress.value = "";
  }
});

ui.release.addEventListener("click", async () => {
  const holder = current ? current.user : "";
  const reason = await ask(
    {
      title: `Release maintenance from the process ${holder}?`,
      text:
        "Maintenance stays on, held by you: you can then post updates and disable it. " +
        "The log records who released it, from which process, and why.",
      ok: "Release maintenance",
      tone: "btn-warning",
    },
    {
      label: "Reason",
      hint: "For the log: what you checked before taking it over.",
      missing: "Enter a reason: it goes to the log.",
    },
  );
  if (reason === null) {
    return;
  }
  const released = await act(
    () => releaseMaintenance(reason),
    `Maintenance released from the process ${holder}: it is yours now.`,
    ui.stateTitle,
  );
  if (released) {
    clearAnswer();
  }
});

/** What is wrong with the window being planned: the field and why, or null. */
function planProblem(start, end) {
  if (start === null || Number.isNaN(start)) {
    return [ui.planStart, "Enter when the window starts: a date and a time."];
  }
  if (start <= Date.now()) {
    return [ui.planStart, "The start must be in the future."];
  }
  if (Number.isNaN(end)) {
    return [ui.planEnd, "Enter a whole end, date and time, or leave it empty."];
  }
  if (end !== null && end <= start) {
    return [ui.planEnd, "The end must come after the start."];
  }
  if (end === null && ui.planAutoEnd.checked) {
    return [ui.planEnd, "To end by itself, the window needs an end."];
  }
  if (!ui.planMessage.value.trim()) {
    return [ui.planMessage, "Enter a message: visitors see it on the maintenance page."];
  }
  return null;
}

ui.planForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  for (const field of [ui.planStart, ui.planEnd, ui.planMessage]) {
    field.removeAttribute("aria-invalid");
  }
  const start = localTime(ui.planStart);
  const end = localTime(ui.planEnd);
  const problem = planProblem(start, end);
  if (problem !== null) {
    refuse(...problem);
    return;
  }
  const body = {
    start: new Date(start).toISOString(),
    message: ui.planMessage.value,
    mode: ui.planReadOnly.checked ? "read-only" : "full",
    autoEnd: ui.planAutoEnd.checked,
  };
  if (end !== null) {
    body.end = new Date(end).toISOString();
  }
  const planned = await act(
    () => planWindow(body),
    `Window planned for ${moment(start)}.`,
    ui.scheduleTitle,
  );
  if (planned) {
    ui.planForm.reset();
  }
});

async function cancelPlanned(win) {
  const start = moment(Date.parse(win.start));
  const yes = await confirmAction({
    title: "Cancel this planned window?",
    text: `Maintenance will not start at ${start}: “${win.message}”`,
    ok: "Cancel window",
    tone: "btn-warning",
    dismiss: "Keep it",
  });
  if (yes) {
    await act(() => cancelPlannedWindow(win.id), "Window cancelled.", ui.scheduleTitle);
  }
}

ui.historyMore.addEventListener("click", async () => {
  const held = history;
  const offset = held.windows.length;
  held.shown = offset + HISTORY_STEP;
  try {
    const page = await getMaintenanceHistory(offset, HISTORY_STEP);
    if (history !== held) {
      history.key = null; // read again meanwhile, maybe short of this page: again
      return;
    }
    const known = new Set(held.windows.map((win) => win.id));
    held.windows = held.windows.concat(page.windows.filter((win) => !known.has(win.id)));
    held.total = page.total;
    renderHistory();
    const first = page.windows.length ? windows.past.get(page.windows[0].id) : undefined;
    (first ? first.summary : ui.historyTitle).focus();
  } catch (error) {
    failed(error);
  }
});

const fields = [ui.username, ui.password, ui.updateMessage, ui.updateProgress];
for (const field of fields.concat(ui.planStart, ui.planEnd, ui.planMessage, ui.confirmInput)) {
  field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
}
ui.confirmInput.addEventListener("input", () => {
  ui.confirmError.textContent = "";
});
ui.planAutoEnd.addEventListener("change", () => ui.planEnd.removeAttribute("aria-invalid"));

ui.logMore.addEventListener("click", async () => {
  log.shown += SHOW_STEP;
  await refresh();
  if (ui.logMore.hidden) {
    ui.logTitle.focus();
  }
});

// Come back up to date at once when the tab is shown again.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && me !== null) {
    refresh();
  }
});

// ---- start --------------------------------------------------------------

async function start() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone) {
    ui.planTimeHint.textContent = `Local times, in your browser’s time zone (${zone}).`;
  }
  try {
    const status = await getAuthStatus();
    if (status && status.isLogged) {
      await signedIn(status);
      return;
    }
    showSignIn();
  } catch (error) {
    showSignIn();
    showAlert(error.message);
  }
}

start();
