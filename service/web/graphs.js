// The Graphs panel: a graph drawn as nodes and edges, once per node-classification model, each
// node coloured by the community that model predicts. Side by side, a shallow GCN and a deep
// plain one show oversmoothing: the deep one paints nearly every node alike. Click a node (or
// focus a drawing and use the arrow keys) for its probabilities under every model.

import { describe, postJSON, v1 } from "./api.js";
import { ofTask } from "./catalog.js";
import { writeState } from "./state.js";
import { el, errorBox, fillSelect, noModels, number } from "./ui.js";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const NAMES = { karate: "Zachary's karate club (real)", generated: "a generated graph (held-out test)" };
const SIZE = 360;

export function setupGraphs(section, catalog, state) {
  const models = ofTask(catalog, "node-classification").slice(0, 4);
  // The graphs to show travel in training's card (card.json "graphs"), not in this page.
  const examples = models.map((m) => m.card?.card?.graphs).find((g) => g && Object.keys(g).length);
  if (!models.length || !examples) return noModels(section, "node classifier with example graphs");
  const error = errorBox(section);
  const form = section.querySelector("form");
  const views = section.querySelector(".views");
  const readout = section.querySelector(".readout");
  const status = section.querySelector(".status");
  fillSelect(form.elements.graph, Object.keys(examples), state.graph);
  [...form.elements.graph.options].forEach((o) => { o.textContent = NAMES[o.value] ?? o.value; });

  let shown = null;  // {graph, layout, results: [{model, prediction, canvas}], selected}

  async function show() {
    const key = form.elements.graph.value;
    writeState({ graph: key });
    const graph = examples[key];
    error.clear();
    readout.textContent = "";
    status.textContent = "Classifying every node…";
    const layout = forceLayout(graph.nodes.length, graph.edges);
    const body = { instances: [{ nodes: graph.nodes, edges: graph.edges }] };
    try {
      const predictions = await Promise.all(models.map((m) => postJSON(`${v1(m.name)}:predict`, body)));
      const results = models.map((model, i) => ({ model, prediction: predictions[i].predictions[0] }));
      views.replaceChildren(...results.map((r) => view(r, graph, layout)));
      shown = { graph, layout, results, selected: null };
      results.forEach((r) => paint(r, shown));
      status.textContent = `${graph.nodes.length} nodes, ${graph.edges.length} edges. Fill: the model's `
        + "prediction; ring: the true community.";
    } catch (err) {
      status.textContent = "";
      error.show(describe(err));
    }
  }

  function view(result, graph, layout) {
    const labels = Object.keys(result.prediction.nodes[0].probabilities);
    const right = result.prediction.nodes.filter((n, i) => labels.indexOf(n.label) === graph.communities[i]).length;
    const smooth = result.prediction.oversmoothing;
    const canvas = el("canvas", { width: SIZE, height: SIZE, tabindex: 0, class: "graph",
                                  "aria-label": `${result.model.name}: the graph coloured by its predictions; click a node or use the arrow keys` });
    result.canvas = canvas;
    canvas.addEventListener("click", (e) => {
      const box = canvas.getBoundingClientRect();
      const [x, y] = [(e.clientX - box.left) / box.width * SIZE, (e.clientY - box.top) / box.height * SIZE];
      const nearest = closest(layout, x, y);
      if (nearest !== null) select(nearest);
    });
    canvas.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      const n = layout.length;
      select(((shown.selected ?? -step) + step + n) % n);
    });
    const facts = `${right} of ${graph.nodes.length} nodes right (${(100 * right / graph.nodes.length).toFixed(0)}%)`
      + (smooth ? ` · embedding cosine similarity ${number(smooth.cosine_similarity, 3)}` : "");
    return el("figure", { class: "graph-view", "data-model": result.model.name },
      canvas, el("figcaption", {}, el("strong", { text: result.model.name }), el("br"), facts));
  }

  function select(node) {
    shown.selected = node;
    shown.results.forEach((r) => paint(r, shown));
    const truth = Object.keys(shown.results[0].prediction.nodes[0].probabilities)[shown.graph.communities[node]];
    readout.replaceChildren(el("strong", { text: `Node ${node}` }), ` (true: ${truth})`,
      ...shown.results.map((r) => {
        const probs = Object.entries(r.prediction.nodes[node].probabilities).sort((a, b) => b[1] - a[1]);
        return el("span", { class: "node-probs" }, el("br"), `${r.model.name}: `,
          probs.map(([label, p]) => `${label} ${(100 * p).toFixed(1)}%`).join(", "));
      }));
  }

  form.elements.graph.addEventListener("change", show);
  form.addEventListener("submit", (e) => { e.preventDefault(); show(); });
  show();
}

function paint(result, shown) {
  const { graph, layout, selected } = shown;
  const ctx = result.canvas.getContext("2d");
  const labels = Object.keys(result.prediction.nodes[0].probabilities);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, SIZE, SIZE);
  ctx.strokeStyle = "#c5cad3";
  ctx.lineWidth = 1;
  for (const [a, b] of graph.edges) {
    ctx.beginPath();
    ctx.moveTo(...layout[a]);
    ctx.lineTo(...layout[b]);
    ctx.stroke();
  }
  const radius = graph.nodes.length > 80 ? 4 : 7;
  layout.forEach(([x, y], i) => {
    const node = result.prediction.nodes[i];
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.fillStyle = COLOURS[labels.indexOf(node.label) % COLOURS.length];
    ctx.globalAlpha = 0.35 + 0.65 * node.probability;  // pale where the model is unsure
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = COLOURS[graph.communities[i] % COLOURS.length];
    ctx.stroke();
    if (i === selected) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#000";
      ctx.beginPath();
      ctx.arc(x, y, radius + 5, 0, 2 * Math.PI);
      ctx.stroke();
    }
  });
}

function closest(layout, x, y) {
  let best = null, bestDistance = 15 ** 2;
  layout.forEach(([a, b], i) => {
    const d = (a - x) ** 2 + (b - y) ** 2;
    if (d < bestDistance) [best, bestDistance] = [i, d];
  });
  return best;
}

// Fruchterman & Reingold (1991): edges pull, every pair of nodes pushes, the moves cool down.
// Starts on a circle, so the same graph always gets the same drawing.
export function forceLayout(n, edges, iterations = 300) {
  const margin = 18, area = SIZE - 2 * margin;
  const k = 0.5 * Math.sqrt((area * area) / Math.max(1, n));  // the edge length it settles to
  const pos = Array.from({ length: n }, (_, i) => [
    SIZE / 2 + (area / 3) * Math.cos((2 * Math.PI * i) / n), SIZE / 2 + (area / 3) * Math.sin((2 * Math.PI * i) / n)]);
  for (let step = 0; step < iterations; step++) {
    const temperature = (area / 10) * (1 - step / iterations);
    const move = pos.map(() => [0, 0]);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = pos[i][0] - pos[j][0], dy = pos[i][1] - pos[j][1];
        const d2 = Math.max(dx * dx + dy * dy, 0.01);
        const push = (k * k) / d2;  // k^2 / d along the unit vector: (dx, dy) * k^2 / d^2
        move[i][0] += dx * push; move[i][1] += dy * push;
        move[j][0] -= dx * push; move[j][1] -= dy * push;
      }
    }
    for (const [a, b] of edges) {
      const dx = pos[a][0] - pos[b][0], dy = pos[a][1] - pos[b][1];
      const pull = Math.sqrt(dx * dx + dy * dy) / k;  // d^2 / k along the unit vector
      move[a][0] -= dx * pull; move[a][1] -= dy * pull;
      move[b][0] += dx * pull; move[b][1] += dy * pull;
    }
    pos.forEach((p, i) => {  // a little gravity keeps loose pieces in the middle, off the borders
      move[i][0] += (SIZE / 2 - p[0]) * 0.05 * k / 10;
      move[i][1] += (SIZE / 2 - p[1]) * 0.05 * k / 10;
      const length = Math.hypot(...move[i]) || 1;
      const scale = Math.min(length, temperature) / length;
      p[0] += move[i][0] * scale;
      p[1] += move[i][1] * scale;
    });
  }
  // Fit the drawing to the canvas, the same scale on both axes.
  const xs = pos.map((p) => p[0]), ys = pos.map((p) => p[1]);
  const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
  const span = Math.max(Math.max(...xs) - x0, Math.max(...ys) - y0, 1e-6);
  const [dx, dy] = [(area - (Math.max(...xs) - x0) * area / span) / 2, (area - (Math.max(...ys) - y0) * area / span) / 2];
  return pos.map(([x, y]) => [margin + dx + ((x - x0) * area) / span, margin + dy + ((y - y0) * area) / span]);
}
