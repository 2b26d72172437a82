// The state card: whether maintenance is on, who holds it, its progress, and the
// switches; and the card that posts an update while it is on.

import {
  disableMaintenance,
  enableMaintenance,
  releaseMaintenance,
  updateMaintenance,
} from "./api.js";
import { ask, clearAnswer, confirmAction } from "./dialogs.js";
import { byId, el } from "./dom.js";
import { refuse } from "./notices.js";
import { ago, at, fromNow, moment, setTime, stamp, timeElement } from "./time.js";

/** @typedef {import("./api.js").MaintenanceState} MaintenanceState */
/** @typedef {import("./api.js").PlannedWindow} PlannedWindow */
/** @typedef {import("./notices.js").Act} Act */
/** @typedef {import("./notices.js").Notices} Notices */

const ui = {
  title: byId("state-title", HTMLElement),
  badge: byId("state-badge", HTMLElement),
  summary: byId("state-summary", HTMLElement),
  next: byId("state-next", HTMLElement),
  leaseWarning: byId("lease-warning", HTMLElement),
  leaseWarningText: byId("lease-warning-text", HTMLElement),
  leaseWarningNext: byId("lease-warning-next", HTMLElement),
  release: byId("release", HTMLButtonElement),
  details: byId("state-details", HTMLElement),
  factBy: byId("fact-by", HTMLElement),
  factSince: byId("fact-since", HTMLTimeElement),
  factAgo: byId("fact-ago", HTMLElement),
  factEndBlock: byId("fact-end-block", HTMLElement),
  factEnd: byId("fact-end", HTMLElement),
  factHolderBlock: byId("fact-holder-block", HTMLElement),
  factHolder: byId("fact-holder", HTMLElement),
  factMessage: byId("fact-message", HTMLElement),
  progressBlock: byId("progress-block", HTMLElement),
  progressNone: byId("progress-none", HTMLElement),
  progress: byId("progress", HTMLProgressElement),
  progressText: byId("progress-text", HTMLElement),
  enableBlock: byId("enable-block", HTMLElement),
  enable: byId("enable", HTMLButtonElement),
  disableBlock: byId("disable-block", HTMLElement),
  disable: byId("disable", HTMLButtonElement),
  switchMode: byId("switch-mode", HTMLButtonElement),
  switchModeHint: byId("switch-mode-hint", HTMLElement),
  automaticNote: byId("automatic-note", HTMLElement),
  readonlyNote: byId("readonly-note", HTMLElement),
  grid: byId("grid", HTMLElement),
  actions: byId("actions", HTMLElement),
  updateForm: byId("update-form", HTMLFormElement),
  updateMessage: byId("update-message", HTMLTextAreaElement),
  updateProgress: byId("update-progress", HTMLInputElement),
};

/**
 * The state card, and which of the switches and the update card show: an ADMIN gets
 * them, but not for automatic maintenance, which only its process ends.
 * @param {MaintenanceState | null} state null while maintenance is off
 * @param {PlannedWindow[]} planned
 * @param {boolean} admin
 */
export function renderState(state, planned, admin) {
  const automatic = state !== null && !state.userTriggered;
  ui.badge.textContent = state === null ? "Off" : automatic ? "On · automatic" : "On";
  ui.badge.className = state === null ? "badge badge-off" : "badge badge-on";
  ui.details.hidden = state === null;
  ui.readonlyNote.hidden = admin;
  document.title = `${state === null ? "Maintenance off" : "Maintenance on"} · Bascule console`;

  if (state === null) {
    ui.summary.textContent = "Maintenance is off: the service answers requests normally.";
  } else {
    renderOn(state, automatic);
  }
  renderPlannedEnd(state === null ? null : state.plannedEnd, state !== null && state.autoEnd);
  renderHolder(state, admin);
  const next = planned[0];
  ui.next.hidden = next === undefined;
  if (next) {
    const start = Date.parse(next.start);
    ui.next.replaceChildren(
      "Next planned window: ",
      timeElement(start, moment(start)),
      ` (${fromNow(start)}).`,
    );
  }

  const switchable = admin && state !== null && !automatic;
  ui.actions.hidden = !switchable;
  ui.grid.classList.toggle("grid-single", ui.actions.hidden);
  ui.enableBlock.hidden = !(admin && state === null);
  ui.disableBlock.hidden = !switchable;
  // A holder whose run ended (or went silent) is the release warning's business.
  const held = state !== null && (state.lease === null || state.lease.alive);
  ui.automaticNote.hidden = !(admin && automatic && held);
  if (state !== null && automatic) {
    ui.automaticNote.replaceChildren(
      `Started automatically by the process ${state.user}: only that process can update ` +
        "or end it, not this console. On the server, an operator can end it with ",
      el("code", {}, `bascule maintenance off --process ${state.user}`),
      ".",
    );
  }
}

/**
 * The summary and the facts of maintenance that is on.
 * @param {MaintenanceState} state
 * @param {boolean} automatic
 */
function renderOn(state, automatic) {
  const readOnly = state.mode === "read-only";
  const released = state.releasedFrom;
  let summary = `Maintenance is on, enabled by ${state.user}.`;
  if (automatic) {
    summary = `Maintenance is on, automatic, by process ${state.user}.`;
  } else if (released) {
    summary = `Maintenance is on, held by ${state.user}, released from the process ${released}.`;
  }
  ui.summary.textContent =
    summary + (readOnly ? " Read-only: GET, HEAD and OPTIONS requests still go through." : "");
  const starter = automatic ? state.user : released;
  ui.factBy.textContent = starter ? `Automatic, by process ${starter}` : state.user;
  setTime(ui.factSince, state.startedAt, stamp(state.startedAt));
  ui.factAgo.textContent = ago(state.startedAt);
  const latest = state.log[state.log.length - 1];
  ui.factMessage.textContent = latest ? latest.message : "–";
  // The API keeps Alien4Cloud's 1% until someone posts a progress: no bar until then.
  ui.progressBlock.hidden = !state.progressSet;
  ui.progressNone.hidden = state.progressSet;
  ui.progress.value = state.progressPercent;
  ui.progressText.textContent = `${state.progressPercent}%`;
  ui.switchMode.textContent = readOnly ? "Switch to full maintenance…" : "Switch to read-only…";
  ui.switchModeHint.textContent = readOnly
    ? "Read-only now: GET, HEAD and OPTIONS requests go through."
    : "Full now: every request is refused. Read-only lets GET, HEAD and OPTIONS through.";
}

/**
 * When a planned window is to end (by itself, with autoEnd): ahead, or overrunning
 * once past.
 * @param {number | null} end
 * @param {boolean} autoEnd
 */
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

/**
 * Who holds maintenance: a process renewing its lease, one whose run ended (failing:
 * "exited with status 3") or went silent, with the ways on for an ADMIN, or the
 * operator it was released to.
 * @param {MaintenanceState | null} state
 * @param {boolean} admin
 */
function renderHolder(state, admin) {
  const lease = state === null ? null : state.lease;
  const released = state === null ? null : state.releasedFrom;
  const dead = lease !== null && !lease.alive;
  ui.factHolderBlock.hidden = lease === null && !released;
  ui.leaseWarning.hidden = !dead;
  ui.release.hidden = !(admin && dead);
  if (state === null) {
    return;
  }
  if (lease !== null) {
    ui.factHolder.replaceChildren(`Held by the process ${state.user}, `, ...holderNow(lease));
  } else if (released) {
    ui.factHolder.textContent = `Released from the process ${released}, to ${state.user}`;
  }
  if (lease !== null && dead) {
    const { ended, outcome } = endOf(lease);
    ui.leaseWarningText.replaceChildren(
      `The process ${state.user} ${outcome} at `,
      timeElement(ended, at(ended)),
      ` (${ago(ended)}).`,
    );
    const why =
      lease.endedAt === null
        ? `It has not renewed its ${lease.ttl} s lease since: maintenance stays on, and ` +
          "its work may be half done. "
        : "Its run failed: maintenance stays on, and its work may be half done. ";
    ui.leaseWarningNext.replaceChildren(
      why,
      "To retry, run it again: ",
      el("code", {}, `bascule run --process ${state.user} -- …`),
      " takes this maintenance over, and the service stays closed between the tries. ",
      admin
        ? "Or, once the service is checked, release it: it becomes yours, to update and disable."
        : "Or an administrator can release it once the service is checked.",
    );
  }
}

/**
 * When and how the run of a process holding maintenance ended: what it said ("exited
 * with status 3"), or, a run that said nothing, its last renewal.
 * @param {import("./api.js").Lease} lease
 */
function endOf(lease) {
  return lease.endedAt !== null
    ? { ended: lease.endedAt, outcome: lease.outcome ?? "ended" }
    : { ended: lease.renewedAt, outcome: "stopped answering" };
}

/**
 * How the holding process is: alive, or how its run ended.
 * @param {import("./api.js").Lease} lease
 * @returns {(Node | string)[]}
 */
function holderNow(lease) {
  if (lease.alive) {
    return [`alive (renewed ${ago(lease.renewedAt, { fine: true })})`];
  }
  const { ended, outcome } = endOf(lease);
  return [`${outcome} at `, timeElement(ended, at(ended))];
}

/**
 * Post the update the form holds: a message, a progress, or both.
 * @param {Act} act
 * @param {Notices} notices
 */
async function postUpdate(act, notices) {
  const message = ui.updateMessage.value;
  const rawProgress = ui.updateProgress.value.trim();
  ui.updateMessage.removeAttribute("aria-invalid");
  ui.updateProgress.removeAttribute("aria-invalid");
  /** @type {{ message?: string, progressPercentage?: number }} */
  const update = {};
  if (message.trim()) {
    update.message = message;
  }
  if (rawProgress !== "" || ui.updateProgress.validity.badInput) {
    const value = Number(rawProgress);
    if (!/^\d{1,3}$/.test(rawProgress) || value > 100) {
      refuse(notices, ui.updateProgress, "The progress must be a whole number from 0 to 100.");
      return;
    }
    update.progressPercentage = value;
  }
  if (Object.keys(update).length === 0) {
    refuse(notices, ui.updateMessage, "Enter a message, a progress, or both.");
    return;
  }
  const posted = await act(() => updateMaintenance(update), "Update posted.");
  if (posted) {
    ui.updateMessage.value = "";
    ui.updateProgress.value = "";
  }
}

/**
 * Release maintenance from its silent process, for a reason the dialog asks.
 * @param {Act} act
 * @param {string} holder the process
 */
async function release(act, holder) {
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
    ui.title,
  );
  if (released) {
    clearAnswer();
  }
}

/**
 * Change the mode of the maintenance on, in one step: the service never opens between.
 * @param {Act} act
 * @param {MaintenanceState | null} state
 */
async function switchMode(act, state) {
  if (state === null) {
    return;
  }
  const toReadOnly = state.mode !== "read-only";
  const yes = await confirmAction(
    toReadOnly
      ? {
          title: "Switch to read-only?",
          text:
            "GET, HEAD and OPTIONS requests go through again; every other request is still " +
            "answered 503. Maintenance stays on, and the log records the switch.",
          ok: "Switch to read-only",
          tone: "btn-primary",
        }
      : {
          title: "Switch to full maintenance?",
          text:
            "Every request is answered 503 again, reads too. Maintenance stays on, and the " +
            "log records the switch.",
          ok: "Switch to full maintenance",
          tone: "btn-warning",
        },
  );
  if (yes) {
    const mode = toReadOnly ? "read-only" : "full";
    await act(
      () => updateMaintenance({ mode }),
      toReadOnly ? "Maintenance is read-only now." : "Maintenance is full now.",
      ui.title,
    );
  }
}

/**
 * The switches, each confirmed first, and the update form.
 * @param {Act} act
 * @param {Notices} notices
 * @param {() => MaintenanceState | null} current the state last rendered
 */
export function setUpState(act, notices, current) {
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
      await act(enableMaintenance, "Maintenance is on.", ui.title);
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
      await act(disableMaintenance, "Maintenance is off.", ui.title);
    }
  });
  ui.release.addEventListener("click", () => release(act, current()?.user ?? ""));
  ui.switchMode.addEventListener("click", () => switchMode(act, current()));
  ui.updateForm.addEventListener("submit", (event) => {
    event.preventDefault();
    postUpdate(act, notices);
  });
  for (const field of [ui.updateMessage, ui.updateProgress]) {
    field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
  }
}
