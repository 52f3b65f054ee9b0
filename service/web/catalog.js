// The repository as the page sees it: the index, then each ready model's metadata and card.

import { getJSON, postJSON, v2 } from "./api.js";

// -> [{name, rows: [{version, state, reason}], ready, metadata, card}] sorted by name.
export async function loadCatalog() {
  const index = await postJSON("/v2/repository/index", {});
  const byName = new Map();
  for (const row of index) {
    if (!byName.has(row.name)) byName.set(row.name, { name: row.name, rows: [] });
    byName.get(row.name).rows.push(row);
  }
  const models = [...byName.values()];
  await Promise.all(models.map(async (model) => {
    model.ready = model.rows.some((r) => r.state === "READY");
    if (!model.ready) return;
    // A model can be unloaded between the index and these calls: keep what did arrive.
    const [metadata, card] = await Promise.allSettled([getJSON(v2(model.name)), getJSON(`${v2(model.name)}/card`)]);
    model.metadata = metadata.value ?? null;
    model.card = card.value ?? null;
    model.problem = metadata.reason ?? card.reason ?? null;
  }));
  return models.sort((a, b) => a.name.localeCompare(b.name));
}

export const task = (model) => model.card?.config?.task ?? model.metadata?.parameters?.task ?? "generic";
export const config = (model) => model.card?.config ?? {};
export const isImage = (model) => Boolean(config(model).data?.image);

export function ofTask(catalog, ...tasks) {
  return catalog.filter((m) => m.ready && m.card && tasks.includes(task(m)));
}
