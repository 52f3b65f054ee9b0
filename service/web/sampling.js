// What the two diffusion panels (Generators and Text to image) share: a sampling stream shown
// frame by frame, and the line that says where a stopped stream was.

import { streamEvents, v2 } from "./api.js";

const FRAMES = 20;  // about this many pictures per stream, whatever its steps

// Streams `params` to the model's generate_stream, asking for about FRAMES progress events; each
// grid goes to show(grid, frame), the step to img.dataset.step (for stoppedAt), and the status
// line says the step, then done(event) at the end. `guessing` names what the frames show.
export async function streamSamples({ name, params, signal, img, status, show, guessing, done }) {
  const every = Math.max(1, Math.round(params.steps / FRAMES));
  let frames = 0;
  img.dataset.step = "";
  status.textContent = "Starting…";
  await streamEvents(`${v2(name)}/generate_stream`, { ...params, every }, (event) => {
    if (event.event === "progress") {
      show(event.grid, ++frames);
      img.dataset.step = event.step;
      status.textContent = `Step ${event.step} of ${event.steps}: the model's current guess of the clean ${guessing}.`;
    } else if (event.event === "done") {
      show(event.grid, ++frames);
      status.textContent = done(event);
    }
  }, signal);
}

// The status line after "Stop": the server stops sampling when the connection closes.
export function stoppedAt(img, params) {
  const at = img.dataset.step ? ` at step ${img.dataset.step} of ${params.steps}` : "";
  return `Stopped${at}: the server stopped sampling when the connection closed.`;
}
