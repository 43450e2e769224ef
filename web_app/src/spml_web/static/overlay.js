// Draws the pose skeleton over the video; the canvas uses the video's own pixel size so that
// normalised landmarks map straight onto it (both elements use object-fit: contain).

const LINE = "rgba(0, 255, 170, 0.95)";
const POINT = "rgba(255, 64, 129, 0.95)";

export function clearOverlay(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
}

export function drawPose(canvas, video, landmarks, connections) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) return;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  if (!landmarks) return;
  const scale = Math.max(w, h) / 640;
  ctx.lineWidth = 3 * scale;
  ctx.strokeStyle = LINE;
  ctx.beginPath();
  for (const [a, b] of connections) {
    const p = landmarks[a];
    const q = landmarks[b];
    if (p[3] < 0.3 || q[3] < 0.3) continue;
    ctx.moveTo(p[0] * w, p[1] * h);
    ctx.lineTo(q[0] * w, q[1] * h);
  }
  ctx.stroke();
  ctx.fillStyle = POINT;
  const r = 3.5 * scale;
  for (const p of landmarks) {
    if (p[3] < 0.3) continue;
    ctx.beginPath();
    ctx.arc(p[0] * w, p[1] * h, r, 0, 2 * Math.PI);
    ctx.fill();
  }
}
