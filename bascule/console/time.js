// Every time the console shows or reads, in the browser's time zone; times are
// milliseconds since the epoch, as the API gives them.

import { el } from "./dom.js";

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** @param {number} ms */
function date(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** @param {number} ms */
function hm(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export const MINUTE = 60000;

/**
 * Whether ``ms`` is less than an hour away (or ago): shown to the second then, where a
 * minute matters.
 * @param {number} ms
 */
export function withinHour(ms) {
  return Math.abs(ms - Date.now()) < 60 * MINUTE;
}

/**
 * The time of day to show: to the second within the hour, else to the minute.
 * @param {number} ms
 */
function shownTime(ms) {
  return withinHour(ms) ? clock(ms) : hm(ms);
}

/** @param {number} ms */
export function clock(ms) {
  return `${hm(ms)}:${pad(new Date(ms).getSeconds())}`;
}

/** @param {number} ms */
export function stamp(ms) {
  return `${date(ms)} ${clock(ms)}`;
}

/**
 * A moment to plan by, with its weekday: "Thu 2026-12-24 02:00" (to the second when it
 * is less than an hour away).
 * @param {number} ms
 */
export function moment(ms) {
  return `${WEEKDAYS[new Date(ms).getDay()]} ${date(ms)} ${shownTime(ms)}`;
}

/**
 * The time alone when it is today, else the whole moment.
 * @param {number} ms
 */
export function at(ms) {
  return date(ms) === date(Date.now()) ? shownTime(ms) : moment(ms);
}

/**
 * The value a datetime-local field holds for ``ms``.
 * @param {number} ms
 */
export function localValue(ms) {
  return `${date(ms)}T${hm(ms)}`;
}

/**
 * A datetime-local field's moment, in the browser's time zone: null when empty, NaN
 * when only part of it is filled in.
 * @param {HTMLInputElement} field
 * @returns {number | null}
 */
export function localTime(field) {
  if (field.value === "") {
    return field.validity.badInput ? Number.NaN : null;
  }
  return new Date(field.value).getTime();
}

/**
 * A length of time: seconds under a minute, then minutes, hours (and minutes, but
 * none), and days.
 * @param {number} ms
 */
export function duration(ms) {
  const seconds = Math.floor(Math.max(0, ms) / 1000);
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 48) {
    return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  }
  return `${Math.floor(hours / 24)} days`;
}

/**
 * How long ago: "just now" under a minute, or, ``fine``, under a second.
 * @param {number} ms
 * @param {{ fine?: boolean }} [options]
 */
export function ago(ms, { fine = false } = {}) {
  const span = Date.now() - ms;
  return span < (fine ? 1000 : 60000) ? "just now" : `${duration(span)} ago`;
}

/** @param {number} ms */
export function fromNow(ms) {
  const span = ms - Date.now();
  return span < 60000 ? "in less than a minute" : `in ${duration(span)}`;
}

/**
 * @param {HTMLTimeElement} time
 * @param {number} ms
 * @param {string} text
 */
export function setTime(time, ms, text) {
  time.dateTime = new Date(ms).toISOString();
  time.textContent = text;
}

/**
 * @param {number} ms
 * @param {string} text
 */
export function timeElement(ms, text) {
  return el("time", { dateTime: new Date(ms).toISOString() }, text);
}

/**
 * From ``start`` to ``end`` (null: no end), as nodes: the end's time alone on the same day.
 * @param {number} start
 * @param {number | null} end
 * @returns {(Node | string)[]}
 */
export function timeRange(start, end) {
  if (end === null) {
    return [timeElement(start, moment(start))];
  }
  const sameDay = date(start) === date(end);
  return [
    timeElement(start, moment(start)),
    sameDay ? "–" : " – ",
    timeElement(end, sameDay ? shownTime(end) : moment(end)),
  ];
}
