// Every call the console makes to the REST API: one function per operation, named after
// its operationId in openapi.yaml, whose schemas the types below follow (times are
// milliseconds since the epoch, but a planned window's start and end, and the times of
// webhooks and events, RFC 3339 text).

/**
 * @typedef {object} LogEntry
 * @property {number} date
 * @property {string} user
 * @property {string} message
 *
 * @typedef {object} Lease
 * @property {number} ttl
 * @property {number} renewedAt
 * @property {boolean} alive
 * @property {number | null} endedAt when its run ended, failing (null: it did not say)
 * @property {string | null} outcome how: "exited with status 3"
 *
 * @typedef {"full" | "read-only"} Mode
 *
 * @typedef {object} MaintenanceState
 * @property {string} user
 * @property {boolean} userTriggered
 * @property {number} progressPercent Alien4Cloud's 1 until someone posts one
 * @property {boolean} progressSet whether someone posted a progress
 * @property {LogEntry[]} log the latest entries
 * @property {number} logSize
 * @property {Mode} mode
 * @property {number} windowId
 * @property {number} startedAt
 * @property {number | null} plannedEnd
 * @property {boolean} autoEnd
 * @property {Lease | null} lease
 * @property {string | null} releasedFrom
 *
 * @typedef {object} LogPage
 * @property {number} offset
 * @property {number} total
 * @property {LogEntry[]} log
 *
 * @typedef {object} PlannedWindow
 * @property {number} id
 * @property {string} start
 * @property {string | null} end
 * @property {string} message
 * @property {Mode} mode
 * @property {boolean} autoEnd
 * @property {string} createdBy
 * @property {number} createdAt
 *
 * @typedef {object} Plan
 * @property {string} start
 * @property {string} [end]
 * @property {string} message
 * @property {Mode} mode
 * @property {boolean} autoEnd
 *
 * @typedef {object} PastWindow
 * @property {number} id
 * @property {"on" | "ended" | "skipped"} status
 * @property {string} user
 * @property {boolean} userTriggered
 * @property {Mode} mode
 * @property {number | null} startedAt
 * @property {number | null} endedAt
 * @property {string | null} endedBy
 * @property {string | null} releasedBy
 * @property {number} logSize
 * @property {number | null} plannedStart
 * @property {number | null} plannedEnd
 * @property {string | null} reason
 *
 * @typedef {object} WindowPage
 * @property {number} total
 * @property {PastWindow[]} windows
 *
 * @typedef {object} WindowLog
 * @property {number} total
 * @property {LogEntry[]} log
 *
 * @typedef {object} UserStatus
 * @property {boolean} isLogged
 * @property {string | null} username
 * @property {string[]} roles
 *
 * @typedef {object} WebhookDelivery
 * @property {string} event its type (`webhook.test` for a test)
 * @property {"pending" | "delivered" | "failed"} status
 * @property {number} attempts
 * @property {string | null} lastAttemptAt
 * @property {string | null} lastResult "HTTP 204", "connection refused"…
 * @property {string | null} nextAttemptAt while pending
 *
 * @typedef {object} Webhook
 * @property {number} id
 * @property {string} url
 * @property {string[] | null} events the types it takes; null: every type
 * @property {string} createdBy
 * @property {string} createdAt
 * @property {{ pending: number, delivered: number, failed: number }} deliveries
 * @property {WebhookDelivery[]} recent the latest, newest first
 *
 * @typedef {object} NewWebhook
 * @property {number} id
 * @property {string} url
 * @property {string} secret shown in this answer only
 *
 * @typedef {object} AuditEvent
 * @property {string} id
 * @property {string} type
 * @property {string} timestamp
 * @property {string} actor
 * @property {string | null} origin
 * @property {string} text
 *
 * @typedef {object} EventPage
 * @property {number} offset
 * @property {number} total of the type asked
 * @property {AuditEvent[]} events newest first
 */

// Relative to the console's page (/maintenance), so that a proxy serving Bascule under
// a prefix serves the console and its calls under it too.
const API = "rest/v1";

/** The largest page the API answers: its Limit parameter's maximum. */
export const PAGE_MAX = 1000;

/** The types of event a webhook may take: the spec's EventType. */
export const EVENT_TYPES = [
  "maintenance.started",
  "maintenance.updated",
  "maintenance.ended",
  "maintenance.released",
  "window.planned",
  "window.cancelled",
  "window.upcoming",
  "window.skipped",
  "lease.expired",
  "user.added",
  "user.removed",
  "user.password_changed",
  "session.revoked",
  "token.created",
  "token.revoked",
  "webhook.added",
  "webhook.removed",
];

/** A failed call: the HTTP status (0 when the server could not be reached) and the envelope's error. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {number | null} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * One call: the envelope's data, or an ApiError.
 * @param {string} method
 * @param {string} path
 * @param {{ json?: object, form?: Record<string, string> }} [body]
 * @returns {Promise<any>} what the operation's schema says
 */
async function call(method, path, { json, form } = {}) {
  /** @type {Record<string, string>} */
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

/** @returns {Promise<UserStatus>} */
export const getAuthStatus = () => call("GET", `${API}/auth/status`);

/**
 * @param {string} username
 * @param {string} password
 * @returns {Promise<UserStatus>}
 */
export const login = (username, password) =>
  call("POST", "login", { form: { username, password, submit: "Login" } });

export const logout = () => call("POST", "logout");

/**
 * @typedef {object} Switch
 * @property {number} version of the state and the planned windows
 * @property {boolean} enabled
 * @property {Mode | null} mode
 */

/**
 * The switch once its version is not `version` (at once without one), or after `wait`
 * seconds: a blocking query.
 * @param {number | null} version
 * @param {number} wait
 * @returns {Promise<Switch>}
 */
export const watchMaintenance = (version, wait) => {
  const query = version === null ? "" : `?version=${version}&wait=${wait}`;
  return call("GET", `${API}/maintenance/watch${query}`);
};

/** @returns {Promise<MaintenanceState | null>} null while maintenance is off */
export const getMaintenanceState = () => call("GET", `${API}/maintenance`);

/**
 * @param {number} offset
 * @param {number} limit
 * @returns {Promise<LogPage>}
 */
export const getMaintenanceLog = (offset, limit) =>
  call("GET", `${API}/maintenance/log?offset=${offset}&limit=${limit}`);

export const enableMaintenance = () => call("POST", `${API}/maintenance`);

/** @param {{ message?: string, progressPercentage?: number, mode?: Mode }} update */
export const updateMaintenance = (update) => call("PUT", `${API}/maintenance`, { json: update });

export const disableMaintenance = () => call("DELETE", `${API}/maintenance`);

/** @param {string} reason */
export const releaseMaintenance = (reason) =>
  call("POST", `${API}/maintenance/release`, { json: { reason } });

/** @returns {Promise<PlannedWindow[]>} soonest first */
export const listPlannedWindows = () => call("GET", `${API}/maintenance/schedule`);

/** @param {Plan} plan */
export const planWindow = (plan) => call("POST", `${API}/maintenance/schedule`, { json: plan });

/** @param {number} id */
export const cancelPlannedWindow = (id) => call("DELETE", `${API}/maintenance/schedule/${id}`);

/**
 * @param {number} offset
 * @param {number} limit
 * @returns {Promise<WindowPage>} newest first
 */
export const getMaintenanceHistory = (offset, limit) =>
  call("GET", `${API}/maintenance/history?offset=${offset}&limit=${limit}`);

/**
 * @param {number} id
 * @param {number} offset
 * @param {number} limit
 * @returns {Promise<WindowLog>} oldest first
 */
export const getMaintenanceWindow = (id, offset, limit) =>
  call("GET", `${API}/maintenance/history/${id}?offset=${offset}&limit=${limit}`);

/** @returns {Promise<Webhook[]>} */
export const listWebhooks = () => call("GET", `${API}/maintenance/webhooks`);

/**
 * @param {string} url
 * @param {string[] | null} events null: every type
 * @returns {Promise<NewWebhook>}
 */
export const addWebhook = (url, events) =>
  call("POST", `${API}/maintenance/webhooks`, {
    json: events === null ? { url } : { url, events },
  });

/** @param {number} id */
export const removeWebhook = (id) => call("DELETE", `${API}/maintenance/webhooks/${id}`);

/** @param {number} id */
export const testWebhook = (id) => call("POST", `${API}/maintenance/webhooks/${id}/test`);

/**
 * @param {number} offset
 * @param {number} limit
 * @param {string} type only the events whose type starts with it ("": every type)
 * @returns {Promise<EventPage>} newest first
 */
export const listEvents = (offset, limit, type) => {
  const only = type === "" ? "" : `&type=${encodeURIComponent(type)}`;
  return call("GET", `${API}/maintenance/events?offset=${offset}&limit=${limit}${only}`);
};
