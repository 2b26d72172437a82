// The confirmation dialog, asked before every consequential action; a browser without
// modal dialogs asks with window.confirm and window.prompt instead.

import { byId } from "./dom.js";

/**
 * What to ask: ``ok`` names the action, ``tone`` is its button's class.
 * @typedef {object} Question
 * @property {string} title
 * @property {string} text
 * @property {string} ok
 * @property {string} tone
 * @property {string} [dismiss] the other button, "Cancel" unless said
 *
 * A text the action needs: its label, its hint, and what to say when it is left empty.
 * @typedef {object} Field
 * @property {string} label
 * @property {string} hint
 * @property {string} missing
 */

const ui = {
  confirm: byId("confirm", HTMLElement),
  form: byId("confirm-form", HTMLFormElement),
  title: byId("confirm-title", HTMLElement),
  text: byId("confirm-text", HTMLElement),
  field: byId("confirm-field", HTMLElement),
  label: byId("confirm-label", HTMLLabelElement),
  input: byId("confirm-input", HTMLTextAreaElement),
  hint: byId("confirm-hint", HTMLElement),
  error: byId("confirm-error", HTMLElement),
  cancel: byId("confirm-cancel", HTMLButtonElement),
  ok: byId("confirm-ok", HTMLButtonElement),
};
// Looked up as a plain element: naming HTMLDialogElement would fail where it is missing.
const dialog =
  typeof (/** @type {Partial<HTMLDialogElement>} */ (ui.confirm).showModal) === "function"
    ? /** @type {HTMLDialogElement} */ (ui.confirm)
    : null;

/**
 * Ask before a consequential action, in a modal dialog; resolves to true when confirmed.
 * @param {Question} question
 * @returns {Promise<boolean>}
 */
export function confirmAction(question) {
  if (dialog === null) {
    return Promise.resolve(window.confirm(`${question.title}\n\n${question.text}`));
  }
  return openDialog(dialog, question, null);
}

/**
 * Ask before a consequential action for a text, in the same dialog; resolves to the
 * text, trimmed, or to null when cancelled. The text typed is kept for the next time
 * until ``clearAnswer``.
 * @param {Question} question
 * @param {Field} field
 * @returns {Promise<string | null>}
 */
export async function ask(question, field) {
  if (dialog === null) {
    const answer = window.prompt(`${question.title}\n\n${question.text}\n\n${field.label}`);
    return answer && answer.trim() ? answer.trim() : null;
  }
  return (await openDialog(dialog, question, field)) ? ui.input.value.trim() : null;
}

export function clearAnswer() {
  ui.input.value = "";
}

/**
 * @param {HTMLDialogElement} dialog
 * @param {Question} question
 * @param {Field | null} field
 * @returns {Promise<boolean>}
 */
function openDialog(dialog, { title, text, ok, tone, dismiss = "Cancel" }, field) {
  ui.title.textContent = title;
  ui.text.textContent = text;
  ui.ok.textContent = ok;
  ui.ok.className = `btn ${tone}`;
  ui.cancel.textContent = dismiss;
  ui.field.hidden = field === null;
  if (field !== null) {
    ui.label.textContent = field.label;
    ui.hint.textContent = field.hint;
    ui.input.dataset.missing = field.missing;
    ui.input.removeAttribute("aria-invalid");
    ui.error.textContent = "";
  }
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), {
      once: true,
    });
    dialog.showModal();
    if (field !== null) {
      ui.input.focus();
    }
  });
}

/** The dialog's own checks: its text is needed to confirm, and a refusal stays open
 * and says why, until the text is changed. */
export function setUpDialog() {
  ui.form.addEventListener("submit", (event) => {
    if (ui.field.hidden || event.submitter !== ui.ok) {
      return;
    }
    if (!ui.input.value.trim()) {
      event.preventDefault();
      ui.input.setAttribute("aria-invalid", "true");
      ui.error.textContent = ui.input.dataset.missing || "";
      ui.input.focus();
    }
  });
  ui.input.addEventListener("input", () => {
    ui.input.removeAttribute("aria-invalid");
    ui.error.textContent = "";
  });
}
