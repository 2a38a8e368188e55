// hami web UI: refresh <main> without a full reload, and apply filters in place.
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

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(partialUrl(), { headers: { Accept: "text/html" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      main.innerHTML = await response.text();
      main.dataset.refreshedAt = String(Date.now());
      if (state) { state.textContent = "live"; state.className = "muted"; }
    } catch (err) {
      if (state) { state.textContent = "refresh failed: " + err.message; state.className = "warn"; }
    } finally {
      busy = false;
    }
  }

  const form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const url = new URL(window.location.href);
      for (const [key, value] of new FormData(form).entries()) {
        if (value) url.searchParams.set(key, String(value)); else url.searchParams.delete(key);
      }
      window.history.replaceState(null, "", url);
      refresh();
    });
  }
  window.setInterval(refresh, every);
})();
