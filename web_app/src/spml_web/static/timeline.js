// A scrolling strip of predictions: one column per prediction, newest on the right, coloured by
// class, its height the predicted class's probability.

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const COLUMN = 3;

export class Timeline {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.legend = legend;
    this.items = [];
    this.classes = [];
  }

  colour(label) {
    const i = this.classes.indexOf(label);
    if (i >= 0) return PALETTE[i % PALETTE.length];
    let hash = 0;
    for (const ch of String(label)) hash = (hash * 31 + ch.charCodeAt(0)) | 0;
    return PALETTE[Math.abs(hash) % PALETTE.length];
  }

  setClasses(classes) {
    this.classes = [...classes];
    this.legend.replaceChildren();
    for (const c of this.classes) {
      const span = document.createElement("span");
      span.textContent = c;
      span.style.setProperty("--c", this.colour(c));
      this.legend.append(span);
    }
    this.draw();
  }

  clear() {
    this.items = [];
    this.draw();
  }

  add(label, probability) {
    this.items.push([label, probability]);
    const max = Math.ceil(this.canvas.clientWidth / COLUMN) + 1;
    if (this.items.length > max) this.items.splice(0, this.items.length - max);
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const w = c.clientWidth || 600;
    const h = c.clientHeight || 90;
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
    }
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#d0d5dc";
    ctx.beginPath();
    ctx.moveTo(0, h / 2);
    ctx.lineTo(w, h / 2);
    ctx.stroke();
    let x = w - this.items.length * COLUMN;
    for (const [label, p] of this.items) {
      const bar = Math.max(2, p * (h - 4));
      ctx.fillStyle = this.colour(label);
      ctx.fillRect(x, h - bar, COLUMN - 1, bar);
      x += COLUMN;
    }
  }
}
