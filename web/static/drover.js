// Drover's few live parts: a run's page follows its tasks' states until the run ends; a
// running task's log grows as lines arrive; forms that change things ask first.
"use strict";

const csrf = () => document.body.dataset.csrf || "";

async function getJson(url) {
  const res = await fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
  if (!res.ok) throw new Error(url + " answered " + res.status);
  return res.json();
}

const WORDS = {
  success: "succeeded", failed: "failed", running: "running", queued: "queued", pending: "waiting",
  up_for_retry: "will retry", upstream_failed: "not run: an earlier task failed", skipped: "skipped",
};

function setBadge(el, state) {
  if (!el) return;
  el.className = el.className.replace(/state-\S+/g, "").trim() + " state-" + state;
  el.textContent = WORDS[state] || state;
  el.dataset.state = state;
}

function followRun(root) {
  const id = root.dataset.run;
  const tick = async () => {
    try {
      const data = await getJson("/api/runs/" + id);
      setBadge(document.getElementById("run-state"), data.run.state);
      let changed = false;
      for (const t of data.tasks) {
        const row = document.querySelector('tr[data-task="' + CSS.escape(t.task_id) + '"] .task-state');
        if (row && row.dataset.state !== t.state) { changed = true; }
        setBadge(row, t.state);
      }
      if (data.run.state === "success" || data.run.state === "failed") {
        // The run ended: reload once for the final figures, receipts and timeline.
        window.location.replace(window.location.pathname);
        return;
      }
      setTimeout(tick, changed ? 1000 : 2000);
    } catch (e) {
      setTimeout(tick, 5000);
    }
  };
  setTimeout(tick, 1000);
}

function followLog(pre) {
  let after = Number(pre.dataset.after || 0);
  const base = "/api/runs/" + pre.dataset.run + "/tasks/" + encodeURIComponent(pre.dataset.task) + "/log?try=" + pre.dataset.try;
  const tick = async () => {
    try {
      const data = await getJson(base + "&after=" + after);
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      for (const l of data.lines) {
        const span = document.createElement("span");
        span.className = l.stream;
        span.textContent = l.line + "\n";
        pre.appendChild(span);
      }
      after = data.next_after;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      setBadge(document.getElementById("task-state"), data.task_state);
      const finished = ["success", "failed", "skipped", "upstream_failed"].includes(data.task_state)
        || data.current_try !== Number(pre.dataset.try);
      if (finished) {
        const live = document.getElementById("live");
        if (live) live.remove();
        // One last read for lines written just before the end.
        const last = await getJson(base + "&after=" + after);
        for (const l of last.lines) {
          const span = document.createElement("span");
          span.className = l.stream;
          span.textContent = l.line + "\n";
          pre.appendChild(span);
        }
        return;
      }
      setTimeout(tick, 1000);
    } catch (e) {
      setTimeout(tick, 5000);
    }
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.getElementById("run");
  if (run && run.dataset.finished === "false") followRun(run);
  const log = document.getElementById("log");
  if (log && log.dataset.live === "true") followLog(log);
  for (const form of document.querySelectorAll("form.confirm")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm || "Are you sure?")) ev.preventDefault();
    });
  }
  void csrf;
});

// The trigger form shows the interval a run for the typed date would cover, before it is
// sent, from the same rule the trigger uses.
function previewInterval(input) {
  const out = document.getElementById("interval-preview");
  if (!out) return;
  let timer = null;
  let asked = 0;
  const ask = async () => {
    const mine = ++asked;
    const url = input.dataset.intervalUrl + "&date=" + encodeURIComponent(input.value.trim());
    try {
      const res = await fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      const data = await res.json();
      if (mine !== asked) return;
      out.classList.toggle("field-error", !res.ok);
      out.textContent = res.ok ? "Runs the data for " + data.words : data.error;
    } catch (e) {
      if (mine === asked) out.textContent = "";
    }
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(ask, 250); });
  ask();
}

// A queued or running revert job: its line follows the job, and the page reloads once it is
// done for the final figures and the Revert button's place.
function followRevert(li, run) {
  const url = "/api/runs/" + run + "/tasks/" + encodeURIComponent(li.dataset.task) + "/revert";
  const tick = async () => {
    try {
      const job = await getJson(url);
      if (job.state !== "queued" && job.state !== "running") {
        window.location.replace(window.location.pathname);
        return;
      }
      const text = li.querySelector(".revert-state");
      if (text && job.state === "running" && job.total != null) {
        text.textContent = "Reverting: " + job.processed.toLocaleString("en-US") + " of "
          + job.total.toLocaleString("en-US") + " records";
      }
      setTimeout(tick, 1000);
    } catch (e) {
      setTimeout(tick, 5000);
    }
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const reverts = document.getElementById("reverts");
  if (reverts) {
    for (const li of reverts.querySelectorAll("li[data-revert-live=true]")) followRevert(li, reverts.dataset.run);
  }
  const date = document.getElementById("logical-date");
  if (date && date.dataset.intervalUrl) previewInterval(date);
});
