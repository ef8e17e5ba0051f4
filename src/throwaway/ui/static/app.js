// The web view's only script: follow a running task's steps live, and keep the task list fresh.
// Everything it inserts is HTML the server rendered (and escaped); it builds no markup itself.
"use strict";

function followTask(main) {
  const source = new EventSource(main.dataset.events);
  let changed = false;
  source.addEventListener("step", (event) => {
    const step = JSON.parse(event.data);
    const holder = document.createElement("template");
    holder.innerHTML = step.html.trim();
    const fresh = holder.content.firstElementChild;
    const old = document.getElementById("step-" + step.number);
    if (old) {
      old.replaceWith(fresh);
    } else {
      document.getElementById("timeline").appendChild(fresh);
      const empty = document.getElementById("no-steps");
      if (empty) empty.remove();
    }
    changed = true;
  });
  source.addEventListener("output", (event) => {
    // What a running cell prints, as it prints it: text only, never markup.
    const printed = JSON.parse(event.data);
    const step = document.getElementById("step-" + printed.step);
    if (!step) return;
    let live = step.querySelector("pre.live-output");
    if (!live) {
      live = document.createElement("pre");
      live.className = "live-output";
      step.appendChild(live);
    }
    live.textContent += printed.text;
  });
  source.addEventListener("status", (event) => {
    const status = JSON.parse(event.data).status;
    const badge = document.getElementById("task-status");
    if (badge && badge.textContent !== status) {
      badge.textContent = status;
      badge.className = "badge " + status;
      changed = true;
      // Another status may call for other actions (cancel a running task, resume a stopped one):
      // the server renders them, so a page whose task changed status while it is still live reloads.
      if (!["done", "max_steps", "failed", "cancelled"].includes(status)) {
        source.close();
        window.location.reload();
      }
    }
  });
  source.addEventListener("end", () => {
    source.close();
    // The finished page has the answer, the artifacts and the actions that now apply.
    if (changed) window.location.reload();
  });
}

function followRows(body) {
  const timer = window.setInterval(async () => {
    const response = await fetch(body.dataset.liveRows, { credentials: "same-origin" });
    if (!response.ok) return;
    body.innerHTML = await response.text();
    if (response.headers.get("x-live") === "0") window.clearInterval(timer);
  }, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main[data-events]");
  if (main) followTask(main);
  const rows = document.querySelector("tbody[data-live-rows]");
  if (rows) followRows(rows);
});
