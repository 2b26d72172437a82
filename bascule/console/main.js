// Bascule's operator console: the public REST API, same origin, no build step. This
// module signs in and out, polls, and wires the parts: state.js, log.js, windows.js,
// webhooks.js and events.js render from what it reads, and run their changes through
// its act().

import {
  ApiError,
  getAuthStatus,
  getMaintenanceState,
  listPlannedWindows,
  login,
  logout,
  watchMaintenance,
} from "./api.js";
import { setUpDialog } from "./dialogs.js";
import { byId } from "./dom.js";
import { createTrail, renderTrail, resetTrail, setUpTrail, syncTrail } from "./events.js";
import { createLog, renderLog, resetLog, setUpLog, syncLog } from "./log.js";
import {
  announce,
  clearAlert,
  clearConnectionAlert,
  createNotices,
  refuse,
  showAlert,
} from "./notices.js";
import { renderState, setUpState } from "./state.js";
import { clock } from "./time.js";
import {
  createWebhooks,
  nextDelivery,
  renderWebhooks,
  resetWebhooks,
  setUpWebhooks,
  syncWebhooks,
} from "./webhooks.js";
import {
  createWindows,
  renderHistory,
  renderSchedule,
  resetWindows,
  setUpWindows,
  syncHistory,
} from "./windows.js";

/** @typedef {import("./api.js").MaintenanceState} MaintenanceState */
/** @typedef {import("./api.js").PlannedWindow} PlannedWindow */
/** @typedef {import("./api.js").UserStatus} UserStatus */

// The longest the console waits on the watch before reading everything again (what
// the watch does not follow: the history's details, a lease's age); and, the server
// unreachable, how soon it tries again.
const WATCH_SECONDS = 5;
const RETRY_MS = 3000;

const ui = {
  main: byId("main", HTMLElement),
  loading: byId("loading", HTMLElement),
  account: byId("account", HTMLElement),
  accountName: byId("account-name", HTMLElement),
  accountRole: byId("account-role", HTMLElement),
  signOut: byId("sign-out", HTMLButtonElement),
  signinView: byId("signin-view", HTMLElement),
  signinTitle: byId("signin-title", HTMLElement),
  signinForm: byId("signin-form", HTMLFormElement),
  username: byId("username", HTMLInputElement),
  password: byId("password", HTMLInputElement),
  consoleView: byId("console-view", HTMLElement),
  consoleTitle: byId("console-title", HTMLElement),
  refreshed: byId("refreshed", HTMLTimeElement),
};

/**
 * Everything the console holds between two events, handed to what needs it.
 * @typedef {object} Console
 * @property {{ username: string, roles: string[] } | null} me while signed in
 * @property {number} timer the next refresh
 * @property {number} generation bumped by every refresh: an older one's answer is dropped
 * @property {number | null} version the version of the state and the schedule rendered
 * @property {boolean} busy a change, or signing in, is under way
 * @property {MaintenanceState | null} current the state last rendered
 * @property {import("./notices.js").Notices} notices
 * @property {import("./log.js").Log} log
 * @property {import("./windows.js").Windows} windows
 * @property {import("./webhooks.js").Webhooks} webhooks
 * @property {import("./events.js").Trail} trail
 */

// ---- signing in and out -------------------------------------------------------------

/** @param {Console} c */
function showSignIn(c) {
  stopPolling(c);
  c.me = null;
  c.current = null;
  resetLog(c.log);
  resetWindows(c.windows);
  resetWebhooks(c.webhooks);
  resetTrail(c.trail);
  ui.loading.hidden = true;
  ui.account.hidden = true;
  ui.consoleView.hidden = true;
  ui.signinView.hidden = false;
  ui.main.classList.add("is-signin");
  document.title = "Sign in · Bascule console";
}

/** @param {Console} c */
function sessionEnded(c) {
  const wasSignedIn = c.me !== null;
  showSignIn(c);
  announce(c.notices, "");
  showAlert(
    c.notices,
    wasSignedIn
      ? "Your session has ended. Sign in again to continue."
      : "Sign in to see the maintenance state.",
  );
  ui.password.value = "";
  (ui.username.value ? ui.password : ui.username).focus();
}

/**
 * @param {Console} c
 * @param {UserStatus} status
 */
function signedIn(c, status) {
  c.me = { username: status.username || "", roles: status.roles || [] };
  ui.accountName.textContent = c.me.username;
  ui.accountRole.textContent = isAdmin(c) ? "Administrator" : "Read-only";
  ui.accountRole.className = isAdmin(c) ? "role role-admin" : "role";
  ui.loading.hidden = true;
  ui.signinView.hidden = true;
  ui.main.classList.remove("is-signin");
  ui.account.hidden = false;
  ui.consoleView.hidden = false;
  return refresh(c);
}

/** @param {Console} c */
function isAdmin(c) {
  return c.me !== null && c.me.roles.includes("ADMIN");
}

/** @param {Console} c */
async function signIn(c) {
  if (c.busy) {
    return;
  }
  const username = ui.username.value.trim();
  const password = ui.password.value;
  ui.username.removeAttribute("aria-invalid");
  ui.password.removeAttribute("aria-invalid");
  if (!username || !password) {
    const field = username ? ui.password : ui.username;
    refuse(c.notices, field, "Enter your user name and your password.");
    return;
  }
  c.busy = true;
  clearAlert();
  announce(c.notices, "");
  try {
    const status = await login(username, password);
    ui.password.value = "";
    c.busy = false;
    await signedIn(c, status);
    ui.consoleTitle.focus();
  } catch (error) {
    c.busy = false;
    showAlert(c.notices, messageOf(error));
    ui.password.select();
    ui.password.focus();
  }
}

/** @param {Console} c */
async function signOut(c) {
  stopPolling(c);
  try {
    await logout();
  } catch {
    // Signed out here anyway; the session expires on its own.
  }
  showSignIn(c);
  clearAlert();
  announce(c.notices, "You are signed out.");
  ui.signinTitle.focus();
}

// ---- polling ------------------------------------------------------------------------

/** @param {Console} c */
function stopPolling(c) {
  clearTimeout(c.timer);
  c.timer = 0;
  c.generation += 1;
}

/**
 * Read the state, the log, the planned windows, (when they changed) the history and,
 * for an ADMIN, the webhooks and the audit trail now, render them, and wait on the
 * watch for the next change (WATCH_SECONDS at most).
 * @param {Console} c
 */
async function refresh(c) {
  if (c.me === null) {
    return;
  }
  stopPolling(c);
  const mine = c.generation;
  const stale = () => mine !== c.generation;
  try {
    // The version first: a change while the rest is read is a change after it.
    c.version = (await watchMaintenance(null, 0)).version;
    if (stale()) {
      return;
    }
    const [state, planned] = await Promise.all([getMaintenanceState(), listPlannedWindows()]);
    if (stale()) {
      return;
    }
    await syncLog(c.log, state, stale);
    if (stale()) {
      return;
    }
    await syncHistory(c.windows, state, planned, stale);
    if (stale()) {
      return;
    }
    const admin = isAdmin(c);
    await Promise.all([syncWebhooks(c.webhooks, admin, stale), syncTrail(c.trail, admin, stale)]);
    if (stale()) {
      return;
    }
    render(c, state, planned);
    clearConnectionAlert();
    void waitForChange(c, mine);
  } catch (error) {
    if (stale()) {
      return;
    }
    failed(c, error);
    if (c.me !== null) {
      c.timer = setTimeout(() => refresh(c), RETRY_MS);
    }
  }
}

/**
 * Wait on the watch until the state or the schedule changes (or WATCH_SECONDS pass,
 * or a webhook's delivery is due), then refresh; the server unreachable, refresh in
 * RETRY_MS (which says so).
 * @param {Console} c
 * @param {number} mine the generation of the refresh that waits
 */
async function waitForChange(c, mine) {
  // A delivery due: how it went shows a second after (the watch does not follow them).
  const due = nextDelivery(c.webhooks);
  const untilDue = due === null ? WATCH_SECONDS : (due - Date.now()) / 1000 + 1;
  try {
    await watchMaintenance(c.version, Math.min(WATCH_SECONDS, Math.max(1, untilDue)));
  } catch {
    if (mine === c.generation && c.me !== null) {
      c.timer = setTimeout(() => refresh(c), RETRY_MS);
    }
    return;
  }
  if (mine === c.generation && c.me !== null) {
    void refresh(c);
  }
}

/**
 * @param {Console} c
 * @param {MaintenanceState | null} state
 * @param {PlannedWindow[]} planned
 */
function render(c, state, planned) {
  c.current = state;
  const admin = isAdmin(c);
  ui.refreshed.textContent = clock(Date.now());
  ui.refreshed.dateTime = new Date().toISOString();
  renderState(state, planned, admin);
  renderLog(c.log, state !== null);
  renderSchedule(c.windows, planned, admin);
  renderHistory(c.windows);
  renderWebhooks(c.webhooks, admin);
  renderTrail(c.trail);
}

// ---- changes ------------------------------------------------------------------------

/** @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/**
 * Report a failed call; authentication required (a 401, or a 403 with code 100 for a
 * session that ended) means: sign in again.
 * @param {Console} c
 * @param {unknown} error
 */
function failed(c, error) {
  if (error instanceof ApiError && (error.status === 401 || error.code === 100)) {
    sessionEnded(c);
    return;
  }
  if (error instanceof ApiError) {
    showAlert(c.notices, error.message, error.status === 0 ? "connection" : "");
  } else {
    showAlert(c.notices, `Unexpected error: ${error}`);
  }
}

/**
 * Run one change; announce ``success``, or show the error; refresh either way.
 * @param {Console} c
 * @param {() => Promise<unknown>} change
 * @param {string} success
 * @param {HTMLElement} [focusAfter]
 */
async function act(c, change, success, focusAfter) {
  if (c.busy) {
    return false;
  }
  c.busy = true;
  clearAlert();
  announce(c.notices, "");
  let done = false;
  try {
    await change();
    announce(c.notices, success);
    done = true;
  } catch (error) {
    failed(c, error);
  } finally {
    c.busy = false;
  }
  await refresh(c);
  if (done && focusAfter && c.me !== null) {
    focusAfter.focus();
  }
  return done;
}

// ---- start --------------------------------------------------------------------------

async function start() {
  /** @type {import("./notices.js").Act} */
  const change = (run, success, focusAfter) => act(c, run, success, focusAfter);
  /** @type {Console} */
  const c = {
    me: null,
    timer: 0,
    generation: 0,
    version: null,
    busy: false,
    current: null,
    notices: createNotices(),
    log: createLog(),
    windows: createWindows(change, (error) => failed(c, error)),
    webhooks: createWebhooks(change),
    trail: createTrail(),
  };

  ui.signinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(c);
  });
  ui.signOut.addEventListener("click", () => signOut(c));
  for (const field of [ui.username, ui.password]) {
    field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
  }
  setUpDialog();
  setUpState(change, c.notices, () => c.current);
  setUpLog(c.log, () => refresh(c));
  setUpWindows(c.windows, c.notices);
  setUpWebhooks(c.webhooks, c.notices);
  setUpTrail(c.trail, () => refresh(c));
  // Come back up to date at once when the tab is shown again.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && c.me !== null) {
      refresh(c);
    }
  });

  try {
    const status = await getAuthStatus();
    if (status && status.isLogged) {
      await signedIn(c, status);
      return;
    }
    showSignIn(c);
  } catch (error) {
    showSignIn(c);
    showAlert(c.notices, messageOf(error));
  }
}

start();
