// The Regressor panel: a slider per named feature; the prediction (value ± std) as they move.

import { describe, postJSON, v1 } from "./api.js";
import { config, ofTask } from "./catalog.js";
import { latestOnly } from "./draw.js";
import { writeState } from "./state.js";
import { el, errorBox, fillSelect, noModels, number } from "./ui.js";

export function setupRegressor(section, catalog, state) {
  const models = ofTask(catalog, "regression").filter((m) => config(m).features?.length);
  if (!models.length) return noModels(section, "regressor with named features");
  const error = errorBox(section);
  const form = section.querySelector("form");
  const select = form.elements.model;
  const sliders = section.querySelector(".sliders");
  const note = section.querySelector(".note");
  const output = section.querySelector(".prediction");
  const contributions = section.querySelector(".contributions");
  fillSelect(select, models.map((m) => m.name), state.reg);
  let features = [];

  const predict = latestOnly(async () => {
    const instance = Object.fromEntries(features.map((f) => [f.name, Number(f.box.value)]));
    writeState({ reg: select.value, x: features.map((f) => f.box.value).join(",") });
    try {
      const [p] = (await postJSON(`${v1(select.value)}:predict`, { instances: [instance] })).predictions;
      error.clear();
      output.replaceChildren(`${number(p.value, 4)}${p.std === undefined ? "" : ` ± ${number(p.std, 3)}`}`,
        el("small", { text: p.std === undefined ? "predicted value" : "predicted value ± one standard deviation" }));
      await explain(instance);
    } catch (err) {
      error.show(describe(err));
    }
  });

  // Each feature's share of (value − baseline value), where the config gives a baseline patient.
  async function explain(instance) {
    const model = models.find((m) => m.name === select.value);
    if (!config(model).explain?.baseline) {
      contributions.hidden = true;
      return;
    }
    const [e] = (await postJSON(`${v1(select.value)}:explain`, { instances: [instance] })).explanations;
    showContributions(contributions, e);
  }

  function build(fromLink) {
    const model = models.find((m) => m.name === select.value);
    const start = startingPoint(model, fromLink);
    note.textContent = start.note;
    features = config(model).features.map((name, i) => feature(name, start.values[i], start.ranges?.[i]));
    sliders.replaceChildren(...features.map((f) => f.label));
    predict();
  }

  function feature(name, value, range) {
    const slider = el("input", { type: "range", "aria-label": `${name} slider` });
    const box = el("input", { type: "number", step: "any", value, "aria-label": name });
    // Without a known range the slider spans the box's value ± its size, re-centred on typing.
    const span = (v) => range ?? [v - Math.max(1, Math.abs(v)), v + Math.max(1, Math.abs(v))];
    const place = (v) => {
      const [low, high] = span(v);
      Object.assign(slider, { min: low, max: high, step: (high - low) / 200 });
      slider.value = v;
    };
    place(Number(value));
    slider.addEventListener("input", () => { box.value = Number(Number(slider.value).toPrecision(4)); predict(); });
    box.addEventListener("change", () => { place(Number(box.value)); predict(); });
    const label = el("label", {}, el("span", { text: name }), slider, box);
    return { name, box, label };
  }

  select.addEventListener("change", () => build(null));
  build(state.reg === select.value ? state.x : null);
}

// A linked point, else a real example from the card (or config), else the middle of the card's
// feature ranges, else zeros, saying which.
function startingPoint(model, fromLink) {
  const names = config(model).features;
  const card = model.card.card ?? {};
  const ranges = pick(card.dataset?.feature_ranges ?? card.feature_ranges, names);
  const linked = fromLink?.split(",").map(Number);
  if (linked?.length === names.length && linked.every(Number.isFinite)) {
    return { values: linked, ranges, note: "The features from the link you opened." };
  }
  const example = pick(card.example ?? card.dataset?.example ?? config(model).example, names);
  if (example) return { values: example, ranges, note: "Starting from a real example in the model's card." };
  if (ranges) {
    return { values: ranges.map(([lo, hi]) => (lo + hi) / 2), ranges,
             note: "The model's card has no example: every feature starts at the middle of its range." };
  }
  return { values: names.map(() => 0), ranges: null,
           note: "The model's card has no example and no feature ranges, so every feature starts at 0 " +
                 "and the predictions mean little there: type real values in the boxes." };
}

// A card's per-feature values, given as {feature: value} or in feature order; null if absent.
function pick(values, names) {
  if (!values) return null;
  const list = Array.isArray(values) ? values : names.map((n) => values[n]);
  return list.length === names.length && list.every((v) => v !== undefined) ? list : null;
}

// Signed bars, largest first: red raised the value above the baseline patient's, blue lowered it.
function showContributions(figure, { attributions, value, baseline_value: base }) {
  const entries = Object.entries(attributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const largest = Math.max(...entries.map(([, v]) => Math.abs(v))) || 1;
  figure.querySelector("figcaption").textContent =
    `Why ${number(value, 4)} and not ${number(base, 4)} (the average training patient's): each feature's share.`;
  figure.querySelector("ol").replaceChildren(...entries.map(([name, v]) => {
    const width = `${(50 * Math.abs(v)) / largest}%`;
    const side = v >= 0 ? `left: 50%; width: ${width}` : `right: 50%; width: ${width}`;
    return el("li", { "aria-label": `${name}: ${v >= 0 ? "+" : ""}${number(v, 3)}` },
      el("span", { class: "label", text: name }),
      el("span", { class: "track" }, el("span", { class: `bar ${v >= 0 ? "up" : "down"}`, style: side })),
      el("span", { class: "value", text: `${v >= 0 ? "+" : ""}${number(v, 3)}` }));
  }));
  figure.hidden = false;
}
