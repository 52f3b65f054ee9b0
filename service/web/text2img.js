// The Text to image panel: a prompt (with the model's suggested prompts), then the stream of the
// model's clean-sample guesses, so the caption's digits appear step by step; "Stop" aborts.

import { config, ofTask } from "./catalog.js";
import { streamSamples, stoppedAt } from "./sampling.js";
import { writeState } from "./state.js";
import { el, errorBox, fillSelect, noModels, randomSeed, stoppable } from "./ui.js";

export function setupTextToImage(section, catalog, state) {
  const models = ofTask(catalog, "text-to-image");
  if (!models.length) return noModels(section, "text-to-image model");
  const error = errorBox(section);
  const form = section.querySelector("form");
  const f = form.elements;
  const img = section.querySelector("img.grid");
  const status = section.querySelector(".status");
  const stop = section.querySelector(".stop");
  const go = form.querySelector("button[type=submit]");
  const suggestions = section.querySelector(".suggestions");
  const words = section.querySelector(".vocabulary");
  const run = stoppable({ go, stop, error, status });

  fillSelect(f.model, models.map((m) => m.name), state.t2i);
  const model = () => models.find((m) => m.name === f.model.value);

  // The model's own suggestions, its words, limits and defaults.
  function adapt(keepValues) {
    const c = config(model());
    f.n.max = c.max_samples ?? "";
    f.steps.max = c.max_steps ?? "";
    if (!keepValues || !f.steps.value) f.steps.value = c.default_steps ?? "";
    if (!keepValues || !f.guidance.value) f.guidance.value = c.default_guidance ?? 1;
    const examples = c.prompt_examples ?? [];
    section.querySelector("datalist").replaceChildren(...examples.map((p) => el("option", { value: p })));
    suggestions.replaceChildren(...examples.map((p) => {
      const chip = el("button", { type: "button", class: "chip", text: p });
      chip.addEventListener("click", () => { f.prompt.value = p; generate(); });
      return chip;
    }));
    if (!keepValues && !f.prompt.value) f.prompt.value = examples[0] ?? "";
    const known = (c.vocabulary ?? []).filter((w) => !w.startsWith("<"));
    words.textContent = known.length ? `Words it knows: ${known.join(", ")}.` : "";
  }

  for (const key of ["prompt", "n", "seed", "steps", "guidance"]) if (state[`t2i_${key}`] !== undefined) f[key].value = state[`t2i_${key}`];
  adapt(true);
  if (!f.prompt.value) f.prompt.value = config(model()).prompt_examples?.[0] ?? "";
  if (!f.seed.value) f.seed.value = randomSeed();

  function body() {
    const params = { prompt: f.prompt.value, num_samples: Number(f.n.value), seed: Number(f.seed.value),
                     steps: Number(f.steps.value), guidance: Number(f.guidance.value), format: "png" };
    writeState({ t2i: f.model.value, t2i_prompt: f.prompt.value, t2i_n: f.n.value, t2i_seed: f.seed.value,
                 t2i_steps: f.steps.value, t2i_guidance: f.guidance.value });
    return params;
  }

  async function generate() {
    let params;
    await run(async (signal) => {
      params = body();
      await stream(f.model.value, params, signal);
    }, () => { status.textContent = stoppedAt(img, params); });
  }

  function stream(name, params, signal) {
    return streamSamples({ name, params, signal, img, status, show, guessing: "digits", done: (event) => {
      const asked = event.prompt ? `“${event.prompt}” (guidance ${event.guidance})` : "no prompt (unconditional)";
      return `Done: ${event.samples.length} samples of ${asked}, ${event.steps} steps, seed ${event.seed}.`;
    } });
  }

  function show(grid, frame) {
    img.src = `data:image/png;base64,${grid}`;
    img.hidden = false;
    img.dataset.frames = frame;
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  section.querySelector(".new-seed").addEventListener("click", () => { f.seed.value = randomSeed(); generate(); });
  f.model.addEventListener("change", () => adapt(false));
  // A shared link shows its result; otherwise the page waits for "Generate".
  if (state.t2i) generate();
}
