// hami web UI: refresh <main> without a full reload, apply filters and searches in place (the
// URL keeps them, so a view can be shared), and say when the data is stale.
"use strict";
(function () {
  const main = document.getElementById("content");
  const state = document.getElementById("refresh-state");
  if (!main) return;
  const every = Number(main.dataset.refreshMs || 1000);
  let busy = false;

  function partialUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return url;
  }

  function badge(text, kind) {
    if (!state) return;
    state.textContent = text;
    state.className = "badge " + kind;
    state.dataset.state = kind;
  }

  function editing() {
    const el = document.activeElement;
    return el && main.contains(el) && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

  async function refresh(force) {
    if (busy || document.hidden || main.dataset.noRefresh !== undefined) return;
    if (!force && editing()) return;  // never swap the page under a user's typing
    busy = true;
    try {
      const response = await fetch(partialUrl(), { headers: { Accept: "text/html" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const stale = response.headers.get("X-Hami-Stale");
      main.innerHTML = await response.text();
      main.dataset.refreshedAt = String(Date.now());
      if (stale) badge("stale since " + stale, "stale"); else badge("live", "live");
    } catch (err) {
      badge("refresh failed: " + err.message, "failed");
    } finally {
      busy = false;
    }
  }

  function merge(form) {
    const url = new URL(window.location.href);
    for (const [key, value] of new FormData(form).entries()) {
      if (value) url.searchParams.set(key, String(value)); else url.searchParams.delete(key);
    }
    window.history.replaceState(null, "", url);
    if (form.id === "filters") {  // the screens' links keep the filters
      for (const link of document.querySelectorAll("nav#screens a, header a.brand")) {
        const target = new URL(link.href);
        for (const key of ["namespace", "node", "vendor", "model"]) {
          const value = url.searchParams.get(key);
          if (value) target.searchParams.set(key, value); else target.searchParams.delete(key);
        }
        link.href = target.toString();
      }
    }
    refresh(true);
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id === "filters" || form.hasAttribute("data-merge")) {
      event.preventDefault();
      merge(form);
    }
  });
  if (state && state.dataset.state === "stale") badge(state.textContent, "stale");
  window.setInterval(refresh, every);
})();
