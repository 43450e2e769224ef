// The One Euro landmark filter of spml_core/keypoints/smoothing.py, operation for operation, so that
// landmarks smoothed in this page equal those smoothed offline (web_app/tests/test_browser.py checks).
// Defaults are MediaPipe's legacy pose pipeline's: min_cutoff 0.05 Hz, beta 80, d_cutoff 1 Hz.
export const SMOOTHING_DEFAULTS = { enabled: true, min_cutoff: 0.05, beta: 80.0, d_cutoff: 1.0, reset_gap_ms: 1000.0 };

function alpha(freq, cutoff) {
  const tau = 1.0 / (2.0 * Math.PI * cutoff);
  return 1.0 / (1.0 + tau * freq);
}

export class OneEuroFilter {
  constructor(options = {}) {
    this.options = { ...SMOOTHING_DEFAULTS, ...options };
    this.reset();
  }

  reset() {
    this.raw = null;
    this.out = null;
    this.dx = null;
    this.t = null;
  }

  // landmarks: 33 rows of [x, y, z, visibility], or null (no person). Returns new rows (or null).
  apply(landmarks, tMs) {
    const o = this.options;
    if (!landmarks) {
      this.reset();
      return null;
    }
    const frame = landmarks.map((row) => row.slice());
    if (!o.enabled) return frame;
    const t = Number(tMs);
    if (this.t === null || !Number.isFinite(t) || t <= this.t || t - this.t > o.reset_gap_ms) {
      this.raw = frame.map((r) => r.slice(0, 3));
      this.out = frame.map((r) => r.slice(0, 3));
      this.dx = frame.map(() => [0, 0, 0]);
      this.t = t;
      return frame;
    }
    const freq = 1000.0 / (t - this.t);
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (const r of frame) {
      if (r[0] < xmin) xmin = r[0];
      if (r[0] > xmax) xmax = r[0];
      if (r[1] < ymin) ymin = r[1];
      if (r[1] > ymax) ymax = r[1];
    }
    const scale = ((xmax - xmin) + (ymax - ymin)) / 2.0;
    const valueScale = scale > 0 ? 1.0 / scale : 1.0;
    const aD = alpha(freq, o.d_cutoff);
    const raw = [], out = [], dxs = [];
    for (let j = 0; j < frame.length; j++) {
      const r = [], f = [], d = [];
      for (let k = 0; k < 3; k++) {
        const v = frame[j][k];
        const dx = (v - this.raw[j][k]) * valueScale * freq;
        const edx = aD * dx + (1.0 - aD) * this.dx[j][k];
        const a = alpha(freq, o.min_cutoff + o.beta * Math.abs(edx));
        const y = a * v + (1.0 - a) * this.out[j][k];
        r.push(v);
        f.push(y);
        d.push(edx);
        frame[j][k] = y;
      }
      raw.push(r);
      out.push(f);
      dxs.push(d);
    }
    this.raw = raw;
    this.out = out;
    this.dx = dxs;
    this.t = t;
    return frame;
  }
}
