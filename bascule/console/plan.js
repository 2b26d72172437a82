// The form that plans a maintenance window: a start and an optional end, typed or
// picked from now ("in 1 h", "2 h long"), read back from now as they change.

import { planWindow } from "./api.js";
import { byId } from "./dom.js";
import { clearAlert, refuse } from "./notices.js";
import { MINUTE, duration, fromNow, localTime, localValue, moment } from "./time.js";

/** @typedef {import("./api.js").Plan} Plan */
/** @typedef {import("./notices.js").Notices} Notices */
/** @typedef {import("./windows.js").Windows} Windows */

const ui = {
  scheduleTitle: byId("schedule-title", HTMLElement),
  planForm: byId("plan-form", HTMLFormElement),
  planStart: byId("plan-start", HTMLInputElement),
  planEnd: byId("plan-end", HTMLInputElement),
  planTimeHint: byId("plan-time-hint", HTMLElement),
  planWhen: byId("plan-when", HTMLElement),
  planMessage: byId("plan-message", HTMLTextAreaElement),
  planReadOnly: byId("plan-read-only", HTMLInputElement),
  planAutoEnd: byId("plan-auto-end", HTMLInputElement),
};

/**
 * The form for an ADMIN only; its fields refuse a past time, and what they say is
 * read again from now.
 * @param {boolean} admin
 */
export function renderPlanForm(admin) {
  ui.planForm.hidden = !admin;
  const now = localValue(Date.now());
  ui.planStart.min = now;
  ui.planEnd.min = ui.planStart.value || now;
  describe();
}

/**
 * What the times chosen say from now: "Starts in 1 h, lasts 2 h 30 min."
 */
function describe() {
  const start = localTime(ui.planStart);
  const end = localTime(ui.planEnd);
  if (start === null || Number.isNaN(start)) {
    ui.planWhen.textContent = "";
    return;
  }
  let text = start <= Date.now() ? "That start has passed." : `Starts ${fromNow(start)}`;
  if (start > Date.now() && end !== null && !Number.isNaN(end) && end > start) {
    text += `, lasts ${duration(end - start)}.`;
  } else if (start > Date.now()) {
    text += ".";
  }
  ui.planWhen.textContent = text;
}

/**
 * Set a time field to ``ms``, to the minute it holds (the next one: never earlier),
 * as a quick pick does.
 * @param {HTMLInputElement} field
 * @param {number} ms
 */
function setField(field, ms) {
  field.value = localValue(Math.ceil(ms / MINUTE) * MINUTE);
  if (field.getAttribute("aria-invalid") === "true") {
    clearAlert(); // what the alert said of it is answered
  }
  field.removeAttribute("aria-invalid");
  describe();
}

/**
 * What is wrong with the window being planned: the field and why, or null.
 * @param {number | null} start
 * @param {number | null} end
 * @returns {[HTMLElement, string] | null}
 */
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

/**
 * Plan the window the form describes, or say what is wrong with it.
 * @param {Windows} windows
 * @param {Notices} notices
 */
async function submitPlan(windows, notices) {
  for (const field of [ui.planStart, ui.planEnd, ui.planMessage]) {
    field.removeAttribute("aria-invalid");
  }
  const start = localTime(ui.planStart);
  const end = localTime(ui.planEnd);
  const problem = planProblem(start, end);
  if (problem !== null) {
    refuse(notices, ...problem);
    return;
  }
  const begins = /** @type {number} */ (start); // planProblem refuses a missing start
  /** @type {Plan} */
  const plan = {
    start: new Date(begins).toISOString(),
    message: ui.planMessage.value,
    mode: ui.planReadOnly.checked ? "read-only" : "full",
    autoEnd: ui.planAutoEnd.checked,
  };
  if (end !== null) {
    plan.end = new Date(end).toISOString();
  }
  const planned = await windows.act(
    () => planWindow(plan),
    `Window planned for ${moment(begins)}.`,
    ui.scheduleTitle,
  );
  if (planned) {
    ui.planForm.reset();
    describe();
  }
}

/**
 * The form's buttons: a start from now, an end from the start (the start, first).
 * @param {Windows} windows
 * @param {Notices} notices
 */
export function setUpPlan(windows, notices) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone) {
    ui.planTimeHint.textContent = `Local times, in your browser’s time zone (${zone}).`;
  }
  ui.planForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitPlan(windows, notices);
  });
  for (const field of [ui.planStart, ui.planEnd, ui.planMessage]) {
    field.addEventListener("input", () => {
      field.removeAttribute("aria-invalid");
      describe();
    });
  }
  ui.planAutoEnd.addEventListener("change", () => ui.planEnd.removeAttribute("aria-invalid"));
  for (const chip of Array.from(ui.planForm.querySelectorAll("button[data-from-now]"))) {
    const minutes = Number(/** @type {HTMLElement} */ (chip).dataset.fromNow);
    chip.addEventListener("click", () => setField(ui.planStart, Date.now() + minutes * MINUTE));
  }
  for (const chip of Array.from(ui.planForm.querySelectorAll("button[data-lasts]"))) {
    const minutes = Number(/** @type {HTMLElement} */ (chip).dataset.lasts);
    chip.addEventListener("click", () => {
      const start = localTime(ui.planStart);
      if (start === null || Number.isNaN(start)) {
        refuse(notices, ui.planStart, "Choose the start first: the end is counted from it.");
        return;
      }
      setField(ui.planEnd, start + minutes * MINUTE);
    });
  }
}
