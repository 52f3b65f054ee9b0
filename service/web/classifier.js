// The Classifier panel: draw a digit; the chosen classifier's top classes, asked as you draw.

import { describe, postJSON, v1 } from "./api.js";
import { config, isImage, ofTask } from "./catalog.js";
import { DrawingPad, latestOnly } from "./draw.js";
import { writeState } from "./state.js";
import { el, errorBox, noModels } from "./ui.js";

const TOP_K = 5;

export function setupClassifier(section, catalog, state) {
  const models = ofTask(catalog, "classification").filter(isImage);
  if (!models.length) return noModels(section, "image classifier");
  const error = errorBox(section);
  const bars = section.querySelector(".bars");
  const status = section.querySelector(".status");
  const choices = section.querySelector(".choices");
  const chosen = models.some((m) => m.name === state.clf) ? state.clf : models[0].name;
  for (const model of models) {
    const input = el("input", { type: "radio", name: "classifier", value: model.name, checked: model.name === chosen });
    choices.append(el("label", {}, input, ` ${model.name}`));
  }
  const current = () => choices.querySelector("input:checked").value;

  const predict = latestOnly(async () => {
    const image = pad.toDigitPNG();
    if (!image) {
      bars.replaceChildren();
      status.textContent = "Draw a digit in the box.";
      return;
    }
    const name = current();
    const labels = config(models.find((m) => m.name === name)).labels ?? [];
    try {
      const { predictions } = await postJSON(`${v1(name)}:predict`, {
        instances: [{ image_b64: image }], top_k: Math.min(TOP_K, labels.length || TOP_K),
      });
      error.clear();
      showBars(bars, predictions[0].top_k);
      status.textContent = `${name} reads a ${predictions[0].label}.`;
    } catch (err) {
      error.show(describe(err));
    }
  });
  const pad = new DrawingPad(section.querySelector("canvas"), predict);
  section.querySelector(".clear").addEventListener("click", () => pad.clear());
  choices.addEventListener("change", () => {
    writeState({ clf: current() });
    predict();
  });
  status.textContent = "Draw a digit in the box.";
}

function showBars(list, topK) {
  list.replaceChildren(...topK.map(({ label, probability }) => {
    const percent = (100 * probability).toFixed(1);
    return el("li", { "aria-label": `${label}: ${percent}%` },
      el("span", { class: "label", text: label }),
      el("span", { class: "bar", style: `width: ${Math.max(0.5, 100 * probability)}%` }),
      el("span", { class: "value", text: `${percent}%` }));
  }));
}
