// The Density panel: a 2-D flow's log-density as a heat map over the plane around its samples,
// the samples on top, and any clicked point's log-density.

import { describe, postJSON, v1, v2 } from "./api.js";
import { config, ofTask } from "./catalog.js";
import { writeState } from "./state.js";
import { errorBox, fillSelect, noModels, number, randomSeed } from "./ui.js";

const GRID = 60;      // cells per side: 3,600 points in one :predict
const FLOOR = 12;     // nats below the highest cell that still get a colour
// Dark to bright (a magma-like ramp), so high density reads as light.
const RAMP = [[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]];

export function setupDensity(section, catalog, state) {
  const models = ofTask(catalog, "flow").filter((m) => String(config(m).data?.shape) === "2");
  if (!models.length) return noModels(section, "two-dimensional flow");
  const error = errorBox(section);
  const canvas = section.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const form = section.querySelector("form");
  const readout = section.querySelector(".readout");
  const status = section.querySelector(".status");
  fillSelect(form.elements.model, models.map((m) => m.name), state.flow);
  form.elements.seed.value = state.dseed ?? randomSeed();
  let view = null;     // {x0, y0, span}: the square of the plane shown
  let picture = null;  // the heat map and points, redrawn under the cursor
  let cursor = null;

  async function draw() {
    const name = form.elements.model.value;
    const seed = Number(form.elements.seed.value);
    writeState({ flow: name, dseed: seed });
    error.clear();
    status.textContent = "Sampling and evaluating the density…";
    try {
      const max = config(models.find((m) => m.name === name)).max_samples ?? 64;
      const { samples } = await postJSON(`${v2(name)}/generate`, { num_samples: max, seed });
      view = square(samples);
      const cells = [];
      for (let j = 0; j < GRID; j++) for (let i = 0; i < GRID; i++) cells.push(toPlane((i + 0.5) / GRID, (j + 0.5) / GRID));
      const { predictions } = await postJSON(`${v1(name)}:predict`, { instances: cells });
      picture = render(predictions.map((p) => p.log_density), samples);
      cursor = null;
      ctx.putImageData(picture, 0, 0);
      status.textContent = `${samples.length} samples (seed ${seed}) over the log-density on a ${GRID}×${GRID} grid.`;
    } catch (err) {
      status.textContent = "";
      error.show(describe(err));
    }
  }

  // The samples' bounding square, widened by a third so the tails show.
  function square(points) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [cx, cy] = [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
    const span = 1.33 * Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys), 1e-6);
    return { x0: cx - span / 2, y0: cy - span / 2, span };
  }
  // u, v in [0, 1] from the canvas's top-left -> a point of the plane (y grows upwards).
  const toPlane = (u, v) => [view.x0 + u * view.span, view.y0 + (1 - v) * view.span];

  function render(logDensity, samples) {
    const off = document.createElement("canvas");
    off.width = off.height = canvas.width;
    const g = off.getContext("2d");
    const cell = canvas.width / GRID;
    const top = Math.max(...logDensity);
    logDensity.forEach((value, k) => {
      g.fillStyle = colour(Math.min(1, Math.max(0, (value - (top - FLOOR)) / FLOOR)));
      g.fillRect((k % GRID) * cell, Math.floor(k / GRID) * cell, Math.ceil(cell), Math.ceil(cell));
    });
    g.lineWidth = 1.5;
    for (const [x, y] of samples) {
      g.beginPath();
      g.arc(((x - view.x0) / view.span) * off.width, (1 - (y - view.y0) / view.span) * off.height, 3, 0, 2 * Math.PI);
      g.fillStyle = "#35d0ff";
      g.strokeStyle = "#001018";
      g.fill();
      g.stroke();
    }
    return g.getImageData(0, 0, off.width, off.height);
  }

  async function read(u, v) {
    if (!view) return;
    cursor = [u, v];
    ctx.putImageData(picture, 0, 0);
    ctx.strokeStyle = "#fff";
    ctx.strokeRect(u * canvas.width - 5, v * canvas.height - 5, 10, 10);
    const [x, y] = toPlane(u, v);
    try {
      const [p] = (await postJSON(`${v1(form.elements.model.value)}:predict`, { instances: [[x, y]] })).predictions;
      error.clear();
      readout.textContent = `log p(${number(x, 3)}, ${number(y, 3)}) = ${number(p.log_density, 4)} nats`;
    } catch (err) {
      error.show(describe(err));
    }
  }

  canvas.addEventListener("click", (e) => {
    const box = canvas.getBoundingClientRect();
    read((e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height);
  });
  // Keyboard: arrows move the cursor a twentieth of the view, and read there.
  canvas.addEventListener("keydown", (e) => {
    const step = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
    if (!step) return;
    e.preventDefault();
    const [u, v] = cursor ?? [0.5, 0.5];
    read(Math.min(1, Math.max(0, u + step[0] / 20)), Math.min(1, Math.max(0, v + step[1] / 20)));
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); draw(); });
  form.elements.model.addEventListener("change", draw);
  form.elements.seed.addEventListener("change", draw);
  section.querySelector(".new-seed").addEventListener("click", () => { form.elements.seed.value = randomSeed(); draw(); });
  draw();
}

function colour(t) {
  const x = t * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const a = RAMP[i], b = RAMP[i + 1], w = x - i;
  return `rgb(${a.map((c, k) => Math.round(c + w * (b[k] - c))).join(",")})`;
}
