// The VAE panel: two drawn digits, encoded, and the line between their latent means decoded
// (the generate endpoint's `interpolate` parameter does all three in one request).

import { describe, postJSON, v2 } from "./api.js";
import { isImage, ofTask } from "./catalog.js";
import { DrawingPad, latestOnly } from "./draw.js";
import { writeState } from "./state.js";
import { el, errorBox, fillSelect, noModels } from "./ui.js";

export function setupVae(section, catalog, state) {
  const models = ofTask(catalog, "vae").filter(isImage);
  if (!models.length) return noModels(section, "VAE");
  const error = errorBox(section);
  const form = section.querySelector("form");
  const strip = section.querySelector(".strip");
  const status = section.querySelector(".status");
  fillSelect(form.elements.model, models.map((m) => m.name), state.vae);
  if (state.vn) form.elements.n.value = state.vn;

  const interpolate = latestOnly(async () => {
    const ends = [from.toDigitPNG(), to.toDigitPNG()];
    if (ends.includes(null)) {
      strip.replaceChildren();
      status.textContent = "Draw a digit in each box.";
      return;
    }
    const name = form.elements.model.value;
    writeState({ vae: name, vn: form.elements.n.value });
    try {
      const result = await postJSON(`${v2(name)}/generate`, {
        num_samples: Number(form.elements.n.value), format: "png",
        interpolate: ends.map((image) => ({ image_b64: image })),
      });
      error.clear();
      strip.replaceChildren(...result.samples.map((png, i) => el("img", {
        src: `data:image/png;base64,${png}`, alt: `Step ${i + 1} of ${result.samples.length}`,
      })));
      status.textContent = `${result.samples.length} decodings from the first digit's latent mean to the second's.`;
    } catch (err) {
      error.show(describe(err));
    }
  });
  const from = new DrawingPad(section.querySelector("canvas.from"), interpolate);
  const to = new DrawingPad(section.querySelector("canvas.to"), interpolate);
  section.querySelector(".clear-from").addEventListener("click", () => from.clear());
  section.querySelector(".clear-to").addEventListener("click", () => to.clear());
  form.addEventListener("submit", (e) => { e.preventDefault(); interpolate(); });
  form.addEventListener("change", interpolate);
  status.textContent = "Draw a digit in each box.";
}
