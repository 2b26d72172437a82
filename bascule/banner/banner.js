// Bascule's banner: a site includes it with one tag,
//   <script src="https://bascule.example/maintenance/banner.js" async></script>
// and its visitors see the maintenance on and the windows planned soon, in their own time
// zone, each dismissable (remembered in this browser). It asks the announcement of the
// Bascule it was loaded from; it leaks no global variable (one function run at once) and
// no style (its elements live in a shadow root, on a host element of its own).
(() => {
  "use strict";

  /** @typedef {{message: string | null, mode: string, since: string, plannedEnd: string | null}} Current */
  /** @typedef {{start: string, end: string | null, message: string, mode: string}} Planned */
  /** @typedef {{current: Current | null, windows: Planned[], noticeSeconds: number}} Announcement */
  /** @typedef {{key: string, title: string, when: string, message: string | null}} Notice */

  const script = document.currentScript;
  if (!(script instanceof HTMLScriptElement) || !script.src) {
    return; // not loaded by a <script src> tag: nothing to ask
  }
  // The announcement beside this script, under the same root path (…/maintenance/banner.js).
  const source = new URL("../rest/v1/maintenance/announcement", script.src);
  const DISMISSED = "bascule-banner-dismissed:";
  const TIME = new Intl.DateTimeFormat(undefined, {
    weekday: "long",
    day: "numeric",
    month: "long",
    hour: "2-digit",
    minute: "2-digit",
    timeZoneName: "short",
  });
  const STYLE = `
    :host { all: initial; display: block; }
    section {
      font: 1rem/1.5 system-ui, sans-serif;
      color: #1b1b1b;
      background: #fff4ce;
      border-bottom: 2px solid #8a6d00;
      padding: 0.5rem 1rem;
    }
    .notice { display: flex; gap: 1rem; align-items: center; justify-content: space-between; }
    .notice + .notice { border-top: 1px solid #d4b94a; margin-top: 0.5rem; padding-top: 0.5rem; }
    p { margin: 0; }
    strong { font-weight: 700; }
    button {
      font: inherit;
      color: #1b1b1b;
      background: #ffffff;
      border: 1px solid #1b1b1b;
      border-radius: 4px;
      padding: 0.25rem 0.75rem;
      cursor: pointer;
      flex: none;
    }
    button:hover { background: #f0f0f0; }
    button:focus-visible { outline: 3px solid #0b57d0; outline-offset: 2px; }
  `;

  /**
   * A moment of the announcement (RFC 3339), in the reader's time zone.
   * @param {string} moment
   */
  function local(moment) {
    return TIME.format(new Date(moment));
  }

  /**
   * What the site will be like: closed, or open for reading.
   * @param {string} mode
   */
  function effect(mode) {
    return mode === "read-only" ? "the site can be read, not changed" : "the site is unavailable";
  }

  /**
   * The notices of an announcement, each with the key that remembers its dismissal.
   * @param {Announcement} announcement
   * @returns {Notice[]}
   */
  function notices(announcement) {
    /** @type {Notice[]} */
    const found = [];
    const current = announcement.current;
    if (current) {
      const until = current.plannedEnd ? `, until ${local(current.plannedEnd)}` : "";
      found.push({
        key: `current:${current.since}`,
        title: "Maintenance in progress",
        when: `Since ${local(current.since)}${until}: ${effect(current.mode)}.`,
        message: current.message,
      });
    }
    for (const planned of announcement.windows) {
      const until = planned.end ? ` until ${local(planned.end)}` : "";
      found.push({
        key: `planned:${planned.start}`,
        title: "Planned maintenance",
        when: `From ${local(planned.start)}${until}, ${effect(planned.mode)}.`,
        message: planned.message,
      });
    }
    return found.filter((notice) => !dismissed(notice.key));
  }

  /** @param {string} key */
  function dismissed(key) {
    try {
      return window.localStorage.getItem(DISMISSED + key) !== null;
    } catch {
      return false; // no storage here (a sandbox, a privacy setting): shown every time
    }
  }

  /** @param {string} key */
  function dismiss(key) {
    try {
      window.localStorage.setItem(DISMISSED + key, new Date().toISOString());
    } catch {
      // Not remembered: dismissed on this page only.
    }
  }

  /**
   * The banner's region, in a shadow root of its own element, first in the page's body.
   * @param {Notice[]} shown
   */
  function show(shown) {
    const host = document.createElement("div");
    host.setAttribute("data-bascule-banner", "");
    const root = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = STYLE;
    const region = document.createElement("section");
    region.setAttribute("role", "region");
    region.setAttribute("aria-label", "Maintenance notice");
    root.append(style, region);
    for (const notice of shown) {
      const item = document.createElement("div");
      item.className = "notice";
      const text = document.createElement("p");
      const title = document.createElement("strong");
      title.textContent = `${notice.title}. `;
      text.append(title, notice.when);
      if (notice.message) {
        text.append(" ", notice.message);
      }
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "Dismiss";
      close.setAttribute("aria-label", `Dismiss: ${notice.title.toLowerCase()}`);
      close.addEventListener("click", () => {
        dismiss(notice.key);
        item.remove();
        if (!region.querySelector(".notice")) {
          host.remove();
        }
      });
      item.append(text, close);
      region.append(item);
    }
    document.body.prepend(host);
  }

  async function run() {
    try {
      const answer = await fetch(source, { credentials: "omit", mode: "cors" });
      if (!answer.ok) {
        return;
      }
      /** @type {{data: Announcement}} */
      const envelope = await answer.json();
      const shown = notices(envelope.data);
      if (shown.length > 0) {
        show(shown);
      }
    } catch (error) {
      // Bascule out of reach: the site goes on without a banner.
      console.debug("bascule banner:", error);
    }
  }

  if (document.body) {
    void run();
  } else {
    document.addEventListener("DOMContentLoaded", () => void run(), { once: true });
  }
})();
