// What the page says of the last thing done: an error in its alert, a success in its
// status line for a few seconds, and a form field refused.

import { byId } from "./dom.js";

const ANNOUNCE_MS = 8000; // how long a success message stays on screen

const ui = {
  alert: byId("alert", HTMLElement),
  status: byId("status", HTMLElement),
};

/**
 * @typedef {object} Notices
 * @property {number} timer the pending clearing of the status line
 */

/**
 * Runs a change through the API, says whether it worked, and refreshes; resolves to
 * whether it worked. ``focusAfter`` takes the focus when it did.
 * @callback Act
 * @param {() => Promise<unknown>} change
 * @param {string} success
 * @param {HTMLElement} [focusAfter]
 * @returns {Promise<boolean>}
 */

/** @returns {Notices} */
export function createNotices() {
  return { timer: 0 };
}

/**
 * Show an error; ``kind`` "connection" marks one that the next good refresh clears.
 * @param {Notices} notices
 * @param {string} message
 * @param {"" | "connection"} [kind]
 */
export function showAlert(notices, message, kind = "") {
  if (kind !== "connection") {
    announce(notices, ""); // a success message next to an error would contradict it
  }
  ui.alert.dataset.kind = kind;
  if (ui.alert.textContent !== message) {
    ui.alert.textContent = message;
  }
}

export function clearAlert() {
  ui.alert.dataset.kind = "";
  ui.alert.textContent = "";
}

/** Clear the alert if it says that the server could not be reached. */
export function clearConnectionAlert() {
  if (ui.alert.dataset.kind === "connection") {
    clearAlert();
  }
}

/**
 * Say that something worked, in a polite live region shown for a few seconds.
 * @param {Notices} notices
 * @param {string} message
 */
export function announce(notices, message) {
  clearTimeout(notices.timer);
  ui.status.textContent = message;
  if (message) {
    notices.timer = setTimeout(() => {
      ui.status.textContent = "";
    }, ANNOUNCE_MS);
  }
}

/**
 * Mark a form's ``field`` invalid, say why in the alert, and focus it.
 * @param {Notices} notices
 * @param {HTMLElement} field
 * @param {string} message
 */
export function refuse(notices, field, message) {
  field.setAttribute("aria-invalid", "true");
  showAlert(notices, message);
  field.focus();
}
