// The Classifier panel: draw a digit; the chosen classifier's top classes, asked as you draw.

import { describe, postJSON, v1 } from "./api.js";
import { config, isImage, ofTask } from "./catalog.js";
import { DrawingPad, latestOnly } from "./draw.js";
import { writeState } from "./state.js";
import { el, errorBox, noModels } from "./ui.js";

const TOP_K = 5;
const EXPLAIN_ORDERS = 8;  // Shapley orders: 8 x 64 pixels is one quick batch while you draw

export function setupClassifier(section, catalog, state) {
  const models = ofTask(catalog, "classification").filter(isImage);
  if (!models.length) return noModels(section, "image classifier");
  const error = errorBox(section);
  const bars = section.querySelector(".bars");
  const status = section.querySelector(".status");
  const choices = section.querySelector(".choices");
  const verdict = section.querySelector(".verdict");
  const explanation = section.querySelector(".explanation");
  const heatmap = explanation.querySelector("img");
  const caption = explanation.querySelector("figcaption");
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
      verdict.hidden = explanation.hidden = true;
      return;
    }
    const name = current();
    const labels = config(models.find((m) => m.name === name)).labels ?? [];
    try {
      const { predictions } = await postJSON(`${v1(name)}:predict`, {
        instances: [{ image_b64: image }], top_k: Math.min(TOP_K, labels.length || TOP_K),
      });
      error.clear();
      const answer = predictions[0];
      showVerdict(verdict, answer);
      if (answer.error) {  // the guard refused it (guard.action: refuse)
        bars.replaceChildren();
        status.textContent = `${name} declines to read it.`;
        explanation.hidden = true;
        return;
      }
      showBars(bars, answer.top_k);
      status.textContent = `${name} reads a ${answer.label}.`;
      await explain(name, image, answer.label);
    } catch (err) {
      error.show(describe(err));
    }
  });

  // The pixels behind the label, as the server's heat map (Shapley values: red for, blue against).
  async function explain(name, image, label) {
    const { explanations } = await postJSON(`${v1(name)}:explain`, {
      instances: [{ image_b64: image }], format: "png", orders: EXPLAIN_ORDERS,
    });
    heatmap.src = `data:image/png;base64,${explanations[0].heatmap_png}`;
    caption.textContent = `Red pixels raised the probability of ${label}, blue ones lowered it.`;
    explanation.hidden = false;
  }
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

// The guard's verdict, where the model has one (config.yaml's guard: a density model of digits).
function showVerdict(verdict, answer) {
  if (answer.in_distribution === undefined) {
    verdict.hidden = true;
    return;
  }
  const where = answer.percentile === undefined ? "" : `, percentile ${answer.percentile.toFixed(0)} of validation digits`;
  verdict.textContent = answer.in_distribution
    ? `Looks like a digit (log-density ${answer.log_density.toFixed(0)}${where}).`
    : `This does not look like a digit: its log-density ${answer.log_density.toFixed(0)} is below the guard's threshold${where}.`;
  verdict.classList.toggle("outside", !answer.in_distribution);
  verdict.hidden = false;
}
