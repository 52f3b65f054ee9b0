// The Translation panel: English number words in, French out token by token over
// generate_stream, with the decoder's cross-attention (output tokens x source words) as a heat
// map that grows a row per token. "Stop" closes the stream; the server stops at its next step.

import { streamEvents, v2 } from "./api.js";
import { ofTask } from "./catalog.js";
import { writeState } from "./state.js";
import { el, errorBox, fillSelect, noModels, stoppable } from "./ui.js";

const EXAMPLES = ["three hundred seventy-one thousand and ninety-eight", "eighty", "ninety-one",
                  "two hundred thousand", "seven hundred and ninety-seven thousand, seven hundred and ninety-seven"];

export function setupTranslation(section, catalog, state) {
  const models = ofTask(catalog, "translation");
  if (!models.length) return noModels(section, "translation model");
  const error = errorBox(section);
  const form = section.querySelector("form");
  const f = form.elements;
  const output = section.querySelector(".french");
  const table = section.querySelector("table.attention");
  const status = section.querySelector(".status");
  const stop = section.querySelector(".stop");
  const go = form.querySelector("button[type=submit]");
  const run = stoppable({ go, stop, error, status });

  fillSelect(f.model, models.map((m) => m.name), state.tr);
  f.example.replaceChildren(el("option", { value: "", text: "pick an example…" }),
                            ...EXAMPLES.map((e) => el("option", { value: e, text: e })));
  f.text.value = state.text ?? EXAMPLES[0];

  async function translate() {
    output.textContent = "";
    table.replaceChildren();
    let tokens = 0;
    let columns = null;
    writeState({ tr: f.model.value, text: f.text.value });
    status.textContent = "Translating…";
    await run(async (signal) => {
      const body = { text_input: f.text.value, parameters: { attention: true } };
      await streamEvents(`${v2(f.model.value)}/generate_stream`, body, (event) => {
        if (event.event === "done") {
          status.textContent = `Done: ${event.tokens} tokens, finish reason "${event.finish_reason}".`;
          section.dataset.finish = event.finish_reason;
          return;
        }
        if (event.source_tokens) columns = header(event.source_tokens);
        output.textContent += event.text_output;
        row(event.token, event.attention, columns);
        status.textContent = `${++tokens} tokens so far…`;
      }, signal);
    }, () => {
      status.textContent = `Stopped after ${tokens} tokens: the server stopped decoding when the connection closed.`;
      section.dataset.finish = "cancelled";
    });
  }

  function header(words) {
    table.append(el("caption", { text: "Cross-attention: where each French token looked in the English" }),
                 el("tr", {}, el("th", { scope: "col", text: "" }),
                    ...words.map((w) => el("th", { scope: "col", text: w }))));
    return words.length;
  }

  function row(token, weights, columns) {
    if (!columns || !weights) return;
    const cells = weights.map((w) => {
      const shade = Math.round(255 - 215 * Math.min(1, w));
      return el("td", { text: w.toFixed(2), title: w.toFixed(4),
                        style: `background: rgb(${shade}, ${shade}, 255); color: ${w > 0.6 ? "#fff" : "inherit"}` });
    });
    table.append(el("tr", {}, el("th", { scope: "row", text: token }), ...cells));
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); translate(); });
  f.example.addEventListener("change", () => { if (f.example.value) { f.text.value = f.example.value; translate(); } });
}
