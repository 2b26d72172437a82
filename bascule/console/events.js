// The audit trail: every event, newest first, a page at a time; of every type, or of
// those whose type starts with the family chosen ("webhook.").

import { EVENT_TYPES, listEvents } from "./api.js";
import { byId, count, el } from "./dom.js";
import { stamp, timeElement } from "./time.js";

/** @typedef {import("./api.js").AuditEvent} AuditEvent */
/** @typedef {import("./api.js").EventPage} EventPage */

const PAGE = 20; // events on a page

const ui = {
  section: byId("events", HTMLElement),
  count: byId("events-count", HTMLElement),
  type: byId("events-type", HTMLSelectElement),
  empty: byId("events-empty", HTMLElement),
  table: byId("events-table", HTMLTableElement),
  body: byId("events-body", HTMLTableSectionElement),
  pager: byId("events-pager", HTMLElement),
  newer: byId("events-newer", HTMLButtonElement),
  range: byId("events-range", HTMLElement),
  older: byId("events-older", HTMLButtonElement),
};

/**
 * The page of the trail shown: from ``offset``, of the events whose type starts with
 * ``type`` ("": every type), as last read (null until then, and for a user who is not
 * an ADMIN: only they may read it); ``key`` says what the table shows.
 * @typedef {object} Trail
 * @property {number} offset
 * @property {string} type
 * @property {EventPage | null} page
 * @property {string} key
 */

/** @returns {Trail} */
export function createTrail() {
  return { offset: 0, type: "", page: null, key: "" };
}

/**
 * Back to the first page of every type, as after signing out.
 * @param {Trail} trail
 */
export function resetTrail(trail) {
  Object.assign(trail, createTrail());
  ui.type.value = "";
  ui.body.replaceChildren();
}

/**
 * Read the page shown, for an ADMIN; a page past the end (events pruned, another type)
 * gives way to the last one.
 * @param {Trail} trail
 * @param {boolean} admin
 * @param {() => boolean} stale true once a newer refresh took over
 */
export async function syncTrail(trail, admin, stale) {
  if (!admin) {
    trail.page = null;
    return;
  }
  const { offset, type } = trail;
  let page = await listEvents(offset, PAGE, type);
  if (page.events.length === 0 && page.total > 0 && offset > 0) {
    page = await listEvents(lastPage(page.total), PAGE, type);
  }
  if (!stale() && trail.type === type && trail.offset === offset) {
    trail.page = page;
    trail.offset = page.offset;
  }
}

/** @param {number} total */
const lastPage = (total) => Math.floor((total - 1) / PAGE) * PAGE;

/**
 * The section, for an ADMIN only: the page's events, and where it is in the trail.
 * @param {Trail} trail
 */
export function renderTrail(trail) {
  const { page } = trail;
  ui.section.hidden = page === null;
  if (page === null) {
    return;
  }
  const { offset, total, events } = page;
  const kind = trail.type === "" ? "" : ` (${trail.type}*)`;
  ui.count.textContent = total === 0 ? "" : count(total, "event") + kind;
  ui.empty.textContent = trail.type === "" ? "No event yet." : "No event of this type.";
  ui.empty.hidden = events.length > 0;
  ui.table.hidden = events.length === 0;
  const key = JSON.stringify([offset, total, events.map((event) => event.id)]);
  if (key !== trail.key) {
    trail.key = key;
    ui.body.replaceChildren(...events.map(eventRow));
  }
  ui.pager.hidden = total <= PAGE && offset === 0;
  ui.range.textContent = `${offset + 1}–${offset + events.length} of ${total}`;
  // Not disabled (a disabled button loses the focus): said unavailable, and inert.
  ui.newer.setAttribute("aria-disabled", String(offset === 0));
  ui.older.setAttribute("aria-disabled", String(offset + events.length >= total));
}

/**
 * One row of the trail: time, type, who, from where, what.
 * @param {AuditEvent} event
 */
function eventRow(event) {
  const when = Date.parse(event.timestamp);
  return el(
    "tr",
    {},
    el("td", { className: "col-time" }, timeElement(when, stamp(when))),
    el("td", { className: "col-type" }, event.type),
    el("td", { className: "col-user" }, event.actor),
    el("td", { className: "col-origin" }, event.origin ?? "–"),
    el("td", { className: "message-text" }, event.text),
  );
}

/**
 * The filter (a family of types a choice: "maintenance.", "webhook."…) and the pager,
 * which read through ``refresh``.
 * @param {Trail} trail
 * @param {() => Promise<void>} refresh
 */
export function setUpTrail(trail, refresh) {
  const families = new Set(EVENT_TYPES.map((type) => `${type.split(".")[0]}.`));
  ui.type.append(...Array.from(families, (family) => el("option", { value: family }, family)));
  ui.type.addEventListener("change", () => {
    trail.type = ui.type.value;
    trail.offset = 0;
    refresh();
  });
  /**
   * @param {HTMLButtonElement} button
   * @param {number} step
   */
  const turn = (button, step) =>
    button.addEventListener("click", () => {
      if (button.getAttribute("aria-disabled") !== "true") {
        trail.offset = Math.max(0, trail.offset + step);
        refresh();
      }
    });
  turn(ui.newer, -PAGE);
  turn(ui.older, PAGE);
}
