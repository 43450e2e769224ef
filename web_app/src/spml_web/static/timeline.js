// A scrolling strip of predictions: one column per prediction, newest on the right, coloured by
// class, its height the predicted class's probability; below it a time axis (seconds since Start)
// and marks for what happened: disconnects, model switches, Stop, status changes.

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const COLUMN = 3;
const AXIS = 16; // pixels under the bars for the time axis
const MARK_COLOURS = { disconnect: "#d62728", model: "#1f77b4", stop: "#333", status: "#999" };

export class Timeline {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.legend = legend;
    this.items = []; // [label, probability, t (ms since start)] or [null, 0, t] for a mark
    this.marks = []; // {t, text, kind, at: index of the column it stands before}
    this.classes = [];
    this.annotations = []; // [{label, start_ms, end_ms}] of a replayed video, drawn under the columns
    this.t0 = performance.now();
  }

  setAnnotations(ranges) {
    this.annotations = [...ranges];
    this.draw();
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

  start() {
    this.t0 = performance.now();
  }

  clear() {
    this.items = [];
    this.marks = [];
    this.draw();
  }

  now() {
    return performance.now() - this.t0;
  }

  add(label, probability, tMs = null) {
    this.items.push([label, probability, tMs ?? this.now()]);
    this.trim();
    this.draw();
  }

  // A mark is a thin line at the current end of the strip, labelled (e.g. "disconnected").
  mark(text, kind = "status") {
    this.marks.push({ t: this.now(), text, kind, at: this.items.length });
    if (this.marks.length > 50) this.marks.shift();
    this.draw();
  }

  trim() {
    const max = Math.ceil((this.canvas.clientWidth || 600) / COLUMN) + 1;
    const drop = this.items.length - max;
    if (drop > 0) {
      this.items.splice(0, drop);
      for (const m of this.marks) m.at -= drop;
      this.marks = this.marks.filter((m) => m.at >= 0);
    }
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
    const top = h - AXIS;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#d0d5dc";
    ctx.beginPath();
    ctx.moveTo(0, top / 2);
    ctx.lineTo(w, top / 2);
    ctx.stroke();
    const x0 = w - this.items.length * COLUMN;
    let x = x0;
    for (const [label, p] of this.items) {
      const bar = Math.max(2, p * (top - 4));
      ctx.fillStyle = this.colour(label);
      ctx.fillRect(x, top - bar, COLUMN - 1, bar);
      x += COLUMN;
    }
    this.drawAnnotations(ctx, x0, top);
    this.drawAxis(ctx, x0, w, h, top);
    ctx.font = "10px sans-serif";
    // Labels take the first of three rows where they don't overlap an earlier label; else only the line.
    const rowEnds = [-Infinity, -Infinity, -Infinity];
    for (const m of this.marks) {
      const mx = x0 + m.at * COLUMN - 1;
      ctx.fillStyle = MARK_COLOURS[m.kind] || MARK_COLOURS.status;
      ctx.fillRect(mx, 0, 1, top);
      const width = ctx.measureText(m.text).width;
      const x = Math.min(mx + 2, w - width - 2);
      const row = rowEnds.findIndex((end) => x > end + 4);
      if (row < 0) continue;
      ctx.fillText(m.text, x, 10 + row * 11);
      rowEnds[row] = x + width;
    }
  }

  // The annotated label of each column's time, as a 5-pixel band under the bars: the model's classes
  // first (a video may carry labels of several targets), in the class's colour.
  drawAnnotations(ctx, x0, top) {
    if (!this.annotations.length) return;
    const own = this.annotations.filter((a) => this.classes.includes(a.label));
    const ranges = own.length ? own : this.annotations;
    this.items.forEach(([, , t], i) => {
      const hit = ranges.find((a) => t >= a.start_ms && t <= a.end_ms);
      if (!hit) return;
      ctx.fillStyle = this.colour(hit.label);
      ctx.fillRect(x0 + i * COLUMN, top - 5, COLUMN, 5);
    });
  }

  // Ticks every second (every 5 or 10 when the strip spans longer), at the predictions' times.
  drawAxis(ctx, x0, w, h, top) {
    ctx.strokeStyle = "#888";
    ctx.fillStyle = "#555";
    ctx.font = "10px sans-serif";
    ctx.beginPath();
    ctx.moveTo(0, top + 0.5);
    ctx.lineTo(w, top + 0.5);
    ctx.stroke();
    if (this.items.length < 2) return;
    const span = (this.items[this.items.length - 1][2] - this.items[0][2]) / 1000;
    const step = span > 60 ? 10 : span > 15 ? 5 : 1;
    let next = Math.ceil(this.items[0][2] / 1000 / step) * step;
    let lastLabel = -Infinity;
    this.items.forEach(([, , t], i) => {
      if (t / 1000 < next) return;
      const x = x0 + i * COLUMN;
      ctx.beginPath();
      ctx.moveTo(x + 0.5, top);
      ctx.lineTo(x + 0.5, top + 4);
      ctx.stroke();
      // Slow predictions pack seconds into few columns: label a tick only where its text fits.
      if (x - lastLabel >= 30) {
        ctx.fillText(`${next}s`, x + 2, h - 3);
        lastLabel = x;
      }
      while (next <= t / 1000) next += step;
    });
  }
}
