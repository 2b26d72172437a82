// The webhooks the events are POSTed to, and how their latest deliveries went; an
// ADMIN adds one (its secret shown once, then gone from the page), sends it a test
// event, or removes it.

import { EVENT_TYPES, addWebhook, listWebhooks, removeWebhook, testWebhook } from "./api.js";
import { confirmAction } from "./dialogs.js";
import { byId, count, el, forget, placeChildren } from "./dom.js";
import { announce, refuse } from "./notices.js";
import { at, moment, stamp, timeElement } from "./time.js";

/** @typedef {import("./api.js").Webhook} Webhook */
/** @typedef {import("./api.js").WebhookDelivery} WebhookDelivery */
/** @typedef {import("./notices.js").Act} Act */
/** @typedef {import("./notices.js").Notices} Notices */

const ui = {
  section: byId("webhooks", HTMLElement),
  title: byId("webhooks-title", HTMLElement),
  count: byId("webhooks-count", HTMLElement),
  empty: byId("webhooks-empty", HTMLElement),
  list: byId("webhooks-list", HTMLUListElement),
  secretPanel: byId("secret-panel", HTMLElement),
  secretValue: byId("secret-value", HTMLInputElement),
  secretCopy: byId("secret-copy", HTMLButtonElement),
  secretDone: byId("secret-done", HTMLButtonElement),
  form: byId("webhook-form", HTMLFormElement),
  url: byId("webhook-url", HTMLInputElement),
  events: byId("webhook-events", HTMLElement),
};

/**
 * A webhook's item, made once: what changes (its deliveries) is drawn again in place,
 * so that the focus stays on its buttons and its deliveries stay open.
 * @typedef {object} WebhookItem
 * @property {HTMLLIElement} node
 * @property {HTMLParagraphElement} counts
 * @property {HTMLParagraphElement} latest
 * @property {HTMLDetailsElement} details
 * @property {HTMLElement} summary
 * @property {HTMLTableSectionElement} rows
 * @property {string} key its deliveries as last drawn
 *
 * The webhooks' part of the console: the webhooks as last read (none for a user who is
 * not an ADMIN: only they may read them), and their items by id; ``act`` runs a change.
 * @typedef {object} Webhooks
 * @property {Webhook[]} listed
 * @property {Map<number, WebhookItem>} items
 * @property {Act} act
 */

/**
 * @param {Act} act
 * @returns {Webhooks}
 */
export function createWebhooks(act) {
  return { listed: [], items: new Map(), act };
}

/**
 * Forget every webhook and hide the secret, as after signing out.
 * @param {Webhooks} hooks
 */
export function resetWebhooks(hooks) {
  hooks.listed = [];
  hooks.items.clear();
  ui.list.replaceChildren();
  hideSecret();
}

/**
 * Read the webhooks, for an ADMIN.
 * @param {Webhooks} hooks
 * @param {boolean} admin
 * @param {() => boolean} stale true once a newer refresh took over
 */
export async function syncWebhooks(hooks, admin, stale) {
  const listed = admin ? await listWebhooks() : [];
  if (!stale()) {
    hooks.listed = listed;
  }
}

/**
 * When the soonest delivery still to make is due (null: none is), for the console to
 * look again then: how it went shows a moment later.
 * @param {Webhooks} hooks
 * @returns {number | null}
 */
export function nextDelivery(hooks) {
  const due = hooks.listed
    .flatMap((hook) => hook.recent)
    .map((delivery) => (delivery.status === "pending" ? delivery.nextAttemptAt : null))
    .filter((when) => when !== null)
    .map((when) => Date.parse(when));
  return due.length === 0 ? null : Math.min(...due);
}

/**
 * The section, for an ADMIN only.
 * @param {Webhooks} hooks
 * @param {boolean} admin
 */
export function renderWebhooks(hooks, admin) {
  ui.section.hidden = !admin;
  const { listed } = hooks;
  ui.count.textContent = listed.length === 0 ? "" : count(listed.length, "webhook");
  ui.empty.hidden = listed.length > 0;
  ui.list.hidden = listed.length === 0;
  placeChildren(
    ui.list,
    listed.map((hook) => webhookItem(hooks, hook)),
  );
  forget(hooks.items, listed);
}

/**
 * A webhook's item: its URL, the types it takes, who added it, its deliveries, and its
 * buttons.
 * @param {Webhooks} hooks
 * @param {Webhook} hook
 */
function webhookItem(hooks, hook) {
  let item = hooks.items.get(hook.id);
  if (item === undefined) {
    const urlId = `webhook-${hook.id}-url`;
    const added = Date.parse(hook.createdAt);
    const takes = hook.events === null ? ["Every event"] : hook.events;
    const test = el(
      "button",
      { type: "button", className: "btn btn-secondary btn-small", "aria-describedby": urlId },
      "Send a test",
    );
    const remove = el(
      "button",
      { type: "button", className: "btn btn-secondary btn-small", "aria-describedby": urlId },
      "Remove…",
    );
    test.addEventListener("click", () =>
      hooks.act(
        () => testWebhook(hook.id),
        "Test event sent: the list shows how its delivery goes.",
      ),
    );
    remove.addEventListener("click", () => removeHook(hooks, hook));
    const summary = el("summary");
    const rows = el("tbody");
    const details = el(
      "details",
      { className: "deliveries" },
      summary,
      el(
        "div",
        { className: "window-body" },
        el(
          "table",
          { className: "log-table" },
          el("caption", { className: "visually-hidden" }, "Latest deliveries, newest first"),
          deliveriesHead(),
          rows,
        ),
      ),
    );
    const counts = el("p", { className: "window-meta" });
    const latest = el("p", { className: "webhook-latest" });
    const node = el(
      "li",
      { className: "window-item" },
      el("p", { className: "webhook-url", id: urlId }, hook.url),
      el(
        "p",
        { className: "tags" },
        ...takes.map((type) => el("span", { className: "tag" }, type)),
      ),
      el(
        "p",
        { className: "window-meta" },
        `Added by ${hook.createdBy} on `,
        timeElement(added, moment(added)),
      ),
      counts,
      latest,
      details,
      el("div", { className: "item-actions" }, test, remove),
    );
    item = { node, counts, latest, details, summary, rows, key: "" };
    hooks.items.set(hook.id, item);
  }
  const key = JSON.stringify([hook.deliveries, hook.recent]);
  if (item.key !== key) {
    item.key = key;
    describeDeliveries(item, hook);
  }
  return item.node;
}

/**
 * @param {WebhookItem} item
 * @param {Webhook} hook
 */
function describeDeliveries(item, hook) {
  const { pending, delivered, failed } = hook.deliveries;
  item.counts.textContent = `Deliveries: ${delivered} delivered · ${pending} pending · ${failed} failed`;
  const [newest] = hook.recent;
  item.latest.replaceChildren(
    ...(newest === undefined ? ["No delivery yet."] : ["Latest: ", ...outcome(newest)]),
  );
  item.details.hidden = newest === undefined;
  item.summary.textContent = `Latest deliveries (${hook.recent.length})`;
  item.rows.replaceChildren(...hook.recent.map(deliveryRow));
}

/** @type {Record<WebhookDelivery["status"], string>} */
const STATUS_NAMES = { pending: "Pending", delivered: "Delivered", failed: "Failed" };

/**
 * How a delivery went, in a line: "webhook.test, delivered: HTTP 204 at 10:15:03".
 * @param {WebhookDelivery} delivery
 * @returns {(Node | string)[]}
 */
function outcome(delivery) {
  const { event, status, attempts, lastAttemptAt, lastResult, nextAttemptAt } = delivery;
  /** @type {(Node | string)[]} */
  const said = [`${event}, ${status}`];
  if (lastAttemptAt !== null) {
    const tried = Date.parse(lastAttemptAt);
    said.push(`: ${lastResult ?? "tried"} at `, timeElement(tried, at(tried)));
    if (attempts > 1) {
      said.push(` (${attempts} tries)`);
    }
  } else if (status === "pending") {
    said.push(": on its way");
  }
  if (status === "pending" && nextAttemptAt !== null && attempts > 0) {
    const next = Date.parse(nextAttemptAt);
    said.push("; next try at ", timeElement(next, at(next)));
  }
  said.push(".");
  return said;
}

/** The head of a webhook's table of deliveries. */
function deliveriesHead() {
  const columns = ["Event", "Status", "Tries", "Last try (local)", "Result", "Next try (local)"];
  return el("thead", {}, el("tr", {}, ...columns.map((name) => el("th", { scope: "col" }, name))));
}

/**
 * One row of a webhook's table of deliveries.
 * @param {WebhookDelivery} delivery
 */
function deliveryRow(delivery) {
  /** @param {string | null} when */
  const time = (when) => {
    const ms = when === null ? Number.NaN : Date.parse(when);
    return Number.isNaN(ms) ? "–" : timeElement(ms, stamp(ms));
  };
  return el(
    "tr",
    {},
    el("td", {}, delivery.event),
    el(
      "td",
      {},
      el("span", { className: `badge badge-${delivery.status}` }, STATUS_NAMES[delivery.status]),
    ),
    el("td", {}, String(delivery.attempts)),
    el("td", { className: "col-time" }, time(delivery.lastAttemptAt)),
    el("td", { className: "message-text" }, delivery.lastResult ?? "–"),
    el("td", { className: "col-time" }, time(delivery.nextAttemptAt)),
  );
}

/**
 * Remove a webhook, once confirmed.
 * @param {Webhooks} hooks
 * @param {Webhook} hook
 */
async function removeHook(hooks, hook) {
  const yes = await confirmAction({
    title: "Remove this webhook?",
    text: `Nothing more is sent to ${hook.url}, its pending deliveries included.`,
    ok: "Remove webhook",
    tone: "btn-warning",
    dismiss: "Keep it",
  });
  if (yes) {
    await hooks.act(() => removeWebhook(hook.id), "Webhook removed.", ui.title);
  }
}

// ---- adding one ---------------------------------------------------------------------

/**
 * Add the webhook the form describes, and show its secret.
 * @param {Webhooks} hooks
 * @param {Notices} notices
 */
async function submitWebhook(hooks, notices) {
  ui.url.removeAttribute("aria-invalid");
  const url = ui.url.value.trim();
  if (!url) {
    refuse(notices, ui.url, "Enter the URL to POST the events to.");
    return;
  }
  const boxes = Array.from(ui.events.querySelectorAll("input:checked"));
  const types = boxes.map((box) => /** @type {HTMLInputElement} */ (box).value);
  // Shown before the refresh: one that finds the session ended takes it off again.
  const added = await hooks.act(
    async () => showSecret((await addWebhook(url, types.length === 0 ? null : types)).secret),
    "Webhook added. Copy its secret now: it will not be shown again.",
    ui.secretValue,
  );
  if (added) {
    ui.form.reset();
  }
}

/**
 * The new webhook's secret, in a field of its own, selected to copy.
 * @param {string} secret
 */
function showSecret(secret) {
  ui.secretValue.value = secret;
  ui.secretPanel.hidden = false;
  ui.secretValue.select();
}

/** Take the secret off the page: nothing shows it again. */
function hideSecret() {
  ui.secretValue.value = "";
  ui.secretPanel.hidden = true;
}

/**
 * Copy the secret to the clipboard; where the browser refuses, leave it selected.
 * @param {Notices} notices
 */
async function copySecret(notices) {
  try {
    await navigator.clipboard.writeText(ui.secretValue.value);
    announce(notices, "Secret copied to the clipboard.");
  } catch {
    ui.secretValue.focus();
    ui.secretValue.select();
    announce(notices, "The browser did not let the console copy: the secret is selected, copy it.");
  }
}

/**
 * The form (a checkbox per type of event), and the secret's buttons.
 * @param {Webhooks} hooks
 * @param {Notices} notices
 */
export function setUpWebhooks(hooks, notices) {
  ui.events.replaceChildren(
    ...EVENT_TYPES.map((type) => {
      const id = `webhook-event-${type}`;
      return el(
        "div",
        { className: "check" },
        el("input", { type: "checkbox", id, value: type }),
        el("label", { htmlFor: id }, type),
      );
    }),
  );
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitWebhook(hooks, notices);
  });
  ui.url.addEventListener("input", () => ui.url.removeAttribute("aria-invalid"));
  ui.secretCopy.addEventListener("click", () => copySecret(notices));
  ui.secretDone.addEventListener("click", () => {
    hideSecret();
    ui.title.focus();
  });
}
