// Small DOM helpers shared by the panels.

import { describe } from "./api.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Each panel has one error box (role=alert); errors are shown there, never only logged.
export function errorBox(section) {
  const box = section.querySelector(".error");
  return {
    show(text) { box.textContent = text; box.hidden = false; },
    clear() { box.hidden = true; box.textContent = ""; },
  };
}

// One request at a time, with a Stop button: `run(work, stopped)` aborts the request in flight,
// hands `work` a fresh AbortSignal, and on an abort calls `stopped` (which says so in the panel);
// any other error goes to the panel's error box. Stop aborts the request in flight.
export function stoppable({ go, stop, error, status }) {
  let running = null;  // the AbortController of the request in flight
  stop.addEventListener("click", () => running?.abort());
  return async function run(work, stopped) {
    running?.abort();
    const controller = (running = new AbortController());
    error.clear();
    go.disabled = true;
    stop.disabled = false;
    try {
      await work(controller.signal);
    } catch (err) {
      if (err.name === "AbortError") stopped();
      else {
        status.textContent = "";
        error.show(describe(err));
      }
    } finally {
      if (running === controller) {
        running = null;
        go.disabled = false;
        stop.disabled = true;
      }
    }
  };
}

export function fillSelect(select, names, chosen) {
  select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
  if (names.includes(chosen)) select.value = chosen;
}

export function number(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

export const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

// A model's panel shows a plain sentence when the repository has none of its kind.
export function noModels(section, what) {
  section.querySelector("form, .row")?.setAttribute("hidden", "");
  section.append(el("p", { class: "muted", text: `This server has no ${what} loaded.` }));
}
