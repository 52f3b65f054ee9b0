// A canvas to draw a digit on with mouse, pen or finger (pointer events), and the drawing as
// the PNG the digit models expect.

const INK = "#fff";
const GROUND = "#000";   // bright ink on a dark ground, as the digits datasets are
const OUT = 64;          // PNG side: 8x8 digits are exact 8x8-pixel blocks of it
const MARGIN = 0.08;     // of the side, around the digit (the datasets' digits nearly touch the edge)

export class DrawingPad {
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange;
    this.empty = true;
    this.last = null;
    this.clear(false);
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    for (const type of ["pointerup", "pointercancel"]) canvas.addEventListener(type, () => this.#up());
  }

  clear(notify = true) {
    this.ctx.fillStyle = GROUND;
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.empty = true;
    if (notify) this.onChange(this);
  }

  #point(e) {
    const box = this.canvas.getBoundingClientRect();  // the canvas may be shown smaller than it is
    return [(e.clientX - box.left) * (this.canvas.width / box.width),
            (e.clientY - box.top) * (this.canvas.height / box.height)];
  }

  #down(e) {
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.last = this.#point(e);
    this.#stroke(this.last, this.last);
  }

  #move(e) {
    if (!this.last) return;
    const next = this.#point(e);
    this.#stroke(this.last, next);
    this.last = next;
  }

  #up() {
    if (!this.last) return;
    this.last = null;
    this.onChange(this);
  }

  #stroke([x0, y0], [x1, y1]) {
    const ctx = this.ctx;
    ctx.strokeStyle = INK;
    ctx.lineWidth = this.canvas.width / 9;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
    this.empty = false;
    this.onChange(this);
  }

  // The drawing cropped to its ink, centred in a square and scaled to fill it, as a PNG data
  // URL: the datasets' digits fill their 8x8 frame, so a small digit drawn in a corner would
  // otherwise be a different picture from anything the models saw. null when nothing is drawn.
  toDigitPNG() {
    const box = inkBox(this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height));
    if (this.empty || !box) return null;
    const side = Math.max(box.w, box.h) / (1 - 2 * MARGIN);
    const sx = box.x + box.w / 2 - side / 2;
    const sy = box.y + box.h / 2 - side / 2;
    const out = document.createElement("canvas");
    out.width = out.height = OUT;
    const ctx = out.getContext("2d");
    ctx.fillStyle = GROUND;
    ctx.fillRect(0, 0, OUT, OUT);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.canvas, sx, sy, side, side, 0, 0, OUT, OUT);
    return out.toDataURL("image/png");
  }
}

function inkBox({ data, width, height }) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[(y * width + x) * 4] > 64) {  // red channel of a grey pixel
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return x1 < 0 ? null : { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

// Calls `work()` now, or once the call in flight ends: while you draw, requests never pile up,
// and the last drawing is always the one asked about.
export function latestOnly(work) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await work();
      } while (again);
    } finally {
      running = false;
    }
  };
}
