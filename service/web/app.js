// The playground: load the repository once, then set up each panel from it.

import { apiKey, describe } from "./api.js";
import { loadCatalog } from "./catalog.js";
import { setupClassifier } from "./classifier.js";
import { setupDensity } from "./density.js";
import { setupGenerators } from "./generators.js";
import { setupGraphs } from "./graphs.js";
import { renderModels } from "./models.js";
import { setupRegressor } from "./regressor.js";
import { readState } from "./state.js";
import { setupTextToImage } from "./text2img.js";
import { errorBox } from "./ui.js";
import { setupTranslation } from "./translation.js";
import { setupVae } from "./vae.js";

const PANELS = { classifier: setupClassifier, regressor: setupRegressor, generators: setupGenerators,
                 density: setupDensity, vae: setupVae, text2img: setupTextToImage,
                 translation: setupTranslation, graphs: setupGraphs };

// The key form: a new key reloads the page, so every panel asks again with it.
function setupKeyForm() {
  const form = document.querySelector("form.api-key");
  const input = form.querySelector("input");
  input.value = apiKey.get();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey.set(input.value.trim());
    location.reload();
  });
}

async function main() {
  setupKeyForm();
  const models = document.getElementById("models");
  let catalog;
  try {
    catalog = await loadCatalog();
  } catch (err) {
    models.querySelector(".model-list").replaceChildren();
    errorBox(models).show(describe(err));
    return;
  }
  renderModels(models, catalog);
  const state = readState();
  for (const [id, setup] of Object.entries(PANELS)) {
    const section = document.getElementById(id);
    try {
      setup(section, catalog, state);
    } catch (err) {  // one broken panel must not take the others down, nor hide why
      errorBox(section).show(describe(err));
    }
  }
  document.body.dataset.ready = "true";  // every panel is set up (tests wait for this)
}

main();
