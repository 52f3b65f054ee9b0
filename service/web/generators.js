// The Generators panel: samples of a GAN, VAE, flow or diffusion model as a grid; diffusion
// streams its clean-sample prediction so the picture sharpens step by step, and "Stop" aborts.

import { postJSON, v2 } from "./api.js";
import { config, isImage, ofTask, task } from "./catalog.js";
import { streamSamples, stoppedAt } from "./sampling.js";
import { writeState } from "./state.js";
import { el, errorBox, fillSelect, noModels, randomSeed, stoppable } from "./ui.js";


export function setupGenerators(section, catalog, state) {
  const models = ofTask(catalog, "gan", "vae", "flow", "diffusion").filter(isImage);
  if (!models.length) return noModels(section, "image generator");
  const error = errorBox(section);
  const form = section.querySelector("form");
  const f = form.elements;
  const img = section.querySelector("img.grid");
  const status = section.querySelector(".status");
  const stop = section.querySelector(".stop");
  const go = form.querySelector("button[type=submit]");
  const run = stoppable({ go, stop, error, status });

  // A GAN answers in one graph call: the quickest first picture when no link chose a model.
  const first = state.gen ?? (models.find((m) => task(m) === "gan") ?? models[0]).name;
  fillSelect(f.model, models.map((m) => m.name), first);
  const model = () => models.find((m) => m.name === f.model.value);
  const diffusion = () => task(model()) === "diffusion";

  function adapt(keepValues) {
    const c = config(model());
    f.n.max = c.max_samples ?? "";
    form.querySelector(".latent").hidden = diffusion();
    form.querySelector(".diffusion").hidden = !diffusion();
    if (!diffusion()) return;
    f.steps.max = c.max_steps ?? "";
    if (!keepValues || !f.steps.value) f.steps.value = c.default_steps ?? "";
    const labels = c.labels ?? [];
    const unconditional = c.null_label !== undefined || !labels.length;
    f.label.replaceChildren(
      ...(unconditional ? [el("option", { value: "", text: "none (unconditional)" })] : []),
      ...labels.map((label, i) => el("option", { value: String(i), text: label })));
    f.label.disabled = !labels.length;
    guidance();
  }

  // Guidance mixes in the unconditional model: it needs a class and the config's null_label.
  function guidance() {
    f.guidance.disabled = config(model()).null_label === undefined || f.label.disabled || f.label.value === "";
  }

  // Fields from a shared link, then the model's own limits and defaults.
  for (const key of ["n", "seed", "temp", "steps", "sampler", "guidance"]) if (state[key] !== undefined) f[key].value = state[key];
  adapt(true);
  if (state.label !== undefined) f.label.value = state.label;
  guidance();
  if (!f.seed.value) f.seed.value = randomSeed();

  function body() {
    const params = { num_samples: Number(f.n.value), seed: Number(f.seed.value), format: "png" };
    const link = { gen: f.model.value, n: f.n.value, seed: f.seed.value, temp: null, steps: null, sampler: null, label: null, guidance: null };
    if (diffusion()) {
      Object.assign(params, { steps: Number(f.steps.value), sampler: f.sampler.value });
      Object.assign(link, { steps: f.steps.value, sampler: f.sampler.value });
      if (f.label.value !== "") {
        params.label = Number(f.label.value);
        link.label = f.label.value;
        if (!f.guidance.disabled) params.guidance = Number(link.guidance = f.guidance.value);
      }
    } else {
      params.temperature = Number(link.temp = f.temp.value);
    }
    writeState(link);
    return params;
  }

  async function generate() {
    const name = f.model.value;
    let params;
    await run(async (signal) => {
      params = body();
      if (diffusion()) await stream(name, params, signal);
      else {
        status.textContent = "Generating…";
        const result = await postJSON(`${v2(name)}/generate`, params, { signal });
        show(result.grid, 1);
        status.textContent = `${result.samples.length} samples from ${name}, seed ${result.seed}.`;
      }
    }, () => { status.textContent = stoppedAt(img, params); });
  }

  function stream(name, params, signal) {
    return streamSamples({ name, params, signal, img, status, show, guessing: "samples", done: (event) => {
      const cls = event.labels ? ` of class ${event.labels[0]} (guidance ${event.guidance})` : "";
      return `Done: ${event.samples.length} samples${cls}, ${event.steps} ${event.sampler.toUpperCase()} steps, seed ${event.seed}.`;
    } });
  }

  function show(grid, frame) {
    img.src = `data:image/png;base64,${grid}`;
    img.hidden = false;
    img.dataset.frames = frame;
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  section.querySelector(".new-seed").addEventListener("click", () => { f.seed.value = randomSeed(); generate(); });
  // A new GAN/VAE/flow grid costs one graph call; a diffusion run waits for "Generate".
  f.model.addEventListener("change", () => { adapt(false); if (!diffusion()) generate(); });
  f.label.addEventListener("change", guidance);
  // A shared link shows its result; otherwise a quick first grid, but no unasked diffusion run.
  if (state.gen || !diffusion()) generate();
}
