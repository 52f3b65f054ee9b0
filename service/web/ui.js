// Small DOM helpers shared by the panels.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// Each panel has one error box (role=alert); errors are shown there, never only logged.
export function errorBox(section) {
  const box = section.querySelector(".error");
  return {
    show(text) { box.textContent = text; box.hidden = false; },
    clear() { box.hidden = true; box.textContent = ""; },
  };
}

export function fillSelect(select, names, chosen) {
  select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
  if (names.includes(chosen)) select.value = chosen;
}

export function number(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

export const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

// A model's panel shows a plain sentence when the repository has none of its kind.
export function noModels(section, what) {
  section.querySelector("form, .row")?.setAttribute("hidden", "");
  section.append(el("p", { class: "muted", text: `This server has no ${what} loaded.` }));
}
