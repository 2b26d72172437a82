// Bascule's operator console: the public REST API, same origin, no build step.
"use strict";

(() => {
  // Relative to the console's page (/maintenance), so that a proxy serving Bascule under
  // a prefix serves the console and its calls under it too.
  const API = "rest/v1";
  const POLL_MS = 3000;
  const SHOW_STEP = 200; // log entries shown at first, and added by "Show older entries"
  const PAGE_MAX = 1000; // the largest page GET /maintenance/log answers
  const ANNOUNCE_MS = 8000; // how long a success message stays on screen

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
    stateDetails: $("state-details"),
    factBy: $("fact-by"),
    factSince: $("fact-since"),
    factAgo: $("fact-ago"),
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
    confirm: $("confirm"),
    confirmTitle: $("confirm-title"),
    confirmText: $("confirm-text"),
    confirmOk: $("confirm-ok"),
  };

  /** A failed call: the HTTP status (0 when the server could not be reached) and the envelope's error. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let me = null; // {username, roles} while signed in
  let timer = 0;
  let generation = 0; // bumped by every refresh: an older one's answer is dropped
  let busy = false;
  let announceTimer = 0;
  let log = freshLog();
  let logKey = "";

  function freshLog() {
    return { entries: new Map(), total: 0, shown: SHOW_STEP };
  }

  // ---- the API ------------------------------------------------------------

  async function call(method, path, { json, form } = {}) {
    const headers = { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(form).toString();
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body,
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, null, "The server cannot be reached. The console keeps trying.");
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      envelope = null;
    }
    const error = envelope && envelope.error;
    if (response.ok && envelope && !error) {
      return envelope.data;
    }
    const message =
      error && error.message
        ? error.message
        : `The server answered ${response.status} ${response.statusText}`.trim() + ".";
    throw new ApiError(response.status, error ? error.code : null, message);
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

  /** Read the state and the log now, render them, and poll again in POLL_MS. */
  async function refresh() {
    if (me === null) {
      return;
    }
    stopPolling();
    const mine = generation;
    try {
      const state = await call("GET", `${API}/maintenance`);
      if (mine !== generation) {
        return;
      }
      await syncLog(state, mine);
      if (mine !== generation) {
        return;
      }
      render(state);
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

    const from = Math.max(0, total - log.shown);
    const wanted = [0]; // the first entry tells when maintenance started
    for (let i = from; i < total; i += 1) {
      wanted.push(i);
    }
    for (const position of wanted) {
      if (log.entries.has(position)) {
        continue;
      }
      let end = position;
      while (end < total && !log.entries.has(end) && end - position < PAGE_MAX) {
        end += 1;
      }
      const page = await call(
        "GET",
        `${API}/maintenance/log?offset=${position}&limit=${end - position}`,
      );
      if (mine !== generation) {
        return;
      }
      if (page.log.length === 0) {
        break; // maintenance ended or restarted meanwhile: the next refresh sorts it out
      }
      page.log.forEach((entry, i) => log.entries.set(page.offset + i, entry));
    }
  }

  function render(state) {
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
      ui.stateSummary.textContent =
        "Maintenance is off: the service answers requests normally.";
    } else {
      const readOnly =
        state.mode === "read-only" ? " Read-only: GET, HEAD and OPTIONS requests still go through." : "";
      ui.stateSummary.textContent =
        (automatic
          ? `Maintenance is on, automatic, by process ${state.user}.`
          : `Maintenance is on, enabled by ${state.user}.`) + readOnly;
      ui.factBy.textContent = automatic ? `Automatic, by process ${state.user}` : state.user;
      const firstEntry = log.entries.get(0);
      if (firstEntry) {
        setTime(ui.factSince, firstEntry.date, stamp(firstEntry.date));
        ui.factAgo.textContent = ago(firstEntry.date);
      } else {
        ui.factSince.textContent = "unknown";
        ui.factAgo.textContent = "";
      }
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
  }

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
      if (entry === undefined) {
        continue;
      }
      const row = document.createElement("tr");
      const when = document.createElement("td");
      const time = document.createElement("time");
      setTime(time, entry.date, stamp(entry.date));
      when.append(time);
      when.className = "col-time";
      const user = document.createElement("td");
      user.className = "col-user";
      user.textContent = entry.user;
      const message = document.createElement("td");
      message.className = "message-text";
      message.textContent = entry.message;
      row.append(when, user, message);
      rows.append(row);
    }
    ui.logBody.replaceChildren(rows);
    ui.logMore.hidden = from === 0;
    ui.logMore.textContent = `Show older entries (${from} more)`;
  }

  // ---- time ---------------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");

  function clock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function stamp(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms)}`;
  }

  function ago(ms) {
    const minutes = Math.floor(Math.max(0, Date.now() - ms) / 60000);
    if (minutes < 1) {
      return "just now";
    }
    if (minutes < 60) {
      return `${minutes} min ago`;
    }
    const hours = Math.floor(minutes / 60);
    return `${hours} h ${minutes % 60} min ago`;
  }

  function setTime(element, ms, text) {
    let time = element;
    if (element.tagName !== "TIME") {
      time = document.createElement("time");
      element.replaceChildren(time);
    }
    time.dateTime = new Date(ms).toISOString();
    time.textContent = text;
  }

  // ---- confirmation -------------------------------------------------------

  /** Ask before a consequential action, in a modal dialog; resolves to true when confirmed. */
  function confirmAction({ title, text, ok, tone }) {
    if (typeof ui.confirm.showModal !== "function") {
      return Promise.resolve(window.confirm(`${title}\n\n${text}`));
    }
    ui.confirmTitle.textContent = title;
    ui.confirmText.textContent = text;
    ui.confirmOk.textContent = ok;
    ui.confirmOk.className = `btn ${tone}`;
    ui.confirm.returnValue = "";
    return new Promise((resolve) => {
      ui.confirm.addEventListener("close", () => resolve(ui.confirm.returnValue === "confirm"), {
        once: true,
      });
      ui.confirm.showModal();
    });
  }

  // ---- actions ------------------------------------------------------------

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
      const missing = username ? ui.password : ui.username;
      missing.setAttribute("aria-invalid", "true");
      showAlert("Enter your user name and your password.");
      missing.focus();
      return;
    }
    busy = true;
    clearAlert();
    announce("");
    try {
      const status = await call("POST", "login", {
        form: { username, password, submit: "Login" },
      });
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
      await call("POST", "logout");
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
      await act(() => call("POST", `${API}/maintenance`), "Maintenance is on.", ui.stateTitle);
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
      await act(() => call("DELETE", `${API}/maintenance`), "Maintenance is off.", ui.stateTitle);
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
        ui.updateProgress.setAttribute("aria-invalid", "true");
        showAlert("The progress must be a whole number from 0 to 100.");
        ui.updateProgress.focus();
        return;
      }
      body.progressPercentage = value;
    }
    if (Object.keys(body).length === 0) {
      ui.updateMessage.setAttribute("aria-invalid", "true");
      showAlert("Enter a message, a progress, or both.");
      ui.updateMessage.focus();
      return;
    }
    const posted = await act(
      () => call("PUT", `${API}/maintenance`, { json: body }),
      "Update posted.",
    );
    if (posted) {
      ui.updateMessage.value = "";
      ui.updateProgress.value = "";
    }
  });

  for (const field of [ui.username, ui.password, ui.updateMessage, ui.updateProgress]) {
    field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
  }

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
    try {
      const status = await call("GET", `${API}/auth/status`);
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
})();
