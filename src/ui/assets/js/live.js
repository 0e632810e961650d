// Keeping a page live: each page gets a `View` whose polls run every few seconds while it is
// shown (and the tab is visible), stop when the reader moves on, and report to the
// "updated hh:mm:ss" indicator in the header.

import { clock } from "./dom.js";

/** Seconds between two refreshes of a live page. */
export const REFRESH_MS = 3000;

function indicator() {
  return document.getElementById("updated");
}

export function markUpdated() {
  const element = indicator();
  element.textContent = `updated ${clock(new Date())}`;
  element.classList.remove("failed");
  element.removeAttribute("role");
}

/** Says a refresh failed; unlike the every-few-seconds "updated", this is announced. */
export function markFailed(error) {
  const element = indicator();
  element.setAttribute("role", "alert");
  element.textContent = `update failed at ${clock(new Date())}: ${error.message}`;
  element.classList.add("failed");
}

/** One shown page: its polls, and whether it is still the page shown. */
export class View {
  constructor(root) {
    this.root = root;
    this.closed = false;
    this.timers = [];
  }

  /** Runs `refresh` now and then every `ms` until the view closes; one run at a time. */
  every(ms, refresh) {
    let running = false;
    const tick = async () => {
      if (this.closed || running || document.hidden) return;
      running = true;
      try {
        await refresh();
        if (!this.closed) markUpdated();
      } catch (error) {
        if (!this.closed) markFailed(error);
      } finally {
        running = false;
      }
    };
    this.timers.push(setInterval(tick, ms));
    return tick();
  }

  close() {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }
}
