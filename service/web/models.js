// The Models panel: every model of the repository with its versions, state, provider and card.

import { config, task } from "./catalog.js";
import { el, number } from "./ui.js";

export function renderModels(section, catalog) {
  const list = section.querySelector(".model-list");
  list.replaceChildren(...catalog.map(modelCard));
  if (!catalog.length) list.append(el("p", { class: "muted", text: "The repository has no models." }));
}

function modelCard(model) {
  const versions = model.rows.map((r) => r.version).filter(Boolean);
  const states = model.rows.map((r) => `${r.version ? `v${r.version} ` : ""}${r.state.toLowerCase()}`);
  const card = model.card?.card;
  const article = el("article", { class: "model", "aria-labelledby": `model-${model.name}` },
    el("h3", { id: `model-${model.name}`, text: model.name }),
    el("div", { class: "tags" },
      el("span", { class: "tag", text: task(model) }),
      el("span", { class: `tag ${model.ready ? "ready" : "unavailable"}`, text: states.join(", ") }),
      model.card?.provider ? el("span", { class: "tag", text: model.card.provider }) : null,
      versions.length ? el("span", { class: "tag", text: `versions ${versions.join(", ")}` }) : null),
  );
  if (config(model).description) article.append(el("p", { text: config(model).description }));
  for (const row of model.rows.filter((r) => r.state !== "READY" && r.reason)) {
    article.append(el("p", { class: "error", text: `${row.version ? `Version ${row.version}` : "Model"} is unavailable: ${row.reason}` }));
  }
  if (model.problem) article.append(el("p", { class: "error", text: model.problem.message }));
  if (card) article.append(facts(card));
  else if (model.ready) article.append(el("p", { class: "muted", text: "No card.json in this version." }));
  const pictures = el("div", { class: "pictures" });
  const base = `/v2/models/${encodeURIComponent(model.name)}/versions/${model.card?.version}/files`;
  if (model.card?.files.includes("samples.png")) {
    pictures.append(el("img", { class: "samples", src: `${base}/samples.png`, alt: `Samples from ${model.name}` }));
  }
  if (model.card?.files.includes("loss.png")) {
    pictures.append(el("img", { class: "loss", src: `${base}/loss.png`, alt: `Training loss of ${model.name}` }));
  }
  if (model.card?.files.includes("depth.png")) {
    pictures.append(el("img", { class: "loss", src: `${base}/depth.png`, alt: `Accuracy and oversmoothing against depth for ${model.name}` }));
  }
  if (pictures.children.length) article.append(pictures);
  return article;
}

// The card's numbers worth a glance: its metrics (flattened) and the worst parity error.
function facts(card) {
  const list = el("dl");
  const add = (term, value) => list.append(el("dt", { text: term }), el("dd", { text: value }));
  if (card.family) add("family", card.family);
  for (const [key, value] of flatten(card.metrics ?? {})) add(key, number(value));
  const parity = Object.values(card.parity ?? {}).map((p) => p.max_scaled_error ?? p.max_abs_error).filter(Number.isFinite);
  if (parity.length) add("parity error (ORT vs torch)", number(Math.max(...parity), 2));
  if (card.parameters) add("parameters", card.parameters.toLocaleString("en"));
  if (card.training_time_s) add("training time", `${number(card.training_time_s, 3)} s`);
  return list;
}

// Numbers only, two levels deep: histograms and comparisons are too long for a card.
function flatten(metrics, prefix = "", depth = 0) {
  const out = [];
  for (const [key, value] of Object.entries(metrics)) {
    const name = prefix ? `${prefix} ${key}` : key;
    if (typeof value === "number") out.push([name.replaceAll("_", " "), value]);
    else if (value && typeof value === "object" && !Array.isArray(value) && depth < 1 && key !== "histogram") {
      out.push(...flatten(value, name, depth + 1));
    }
  }
  return out;
}
