// Pose estimation off the main thread: MediaPipe Tasks PoseLandmarker (VIDEO mode, CPU delegate),
// loaded from assets this server serves itself. Messages:
//   in  {type: "init", wasmBase, modelUrl}            out {type: "ready"} | {type: "error", message}
//   in  {type: "frame", bitmap, t_ms, frame}           out {type: "pose", frame, t_ms, landmarks, ms, startAt}
// (startAt: epoch ms when detection began, so the page can time the wait before pose starts.)
// landmarks is 33 rows of [x, y, z, visibility] or null when no person is found.
import { FilesetResolver, PoseLandmarker } from "/static/vendor/tasks-vision/vision_bundle.mjs";

let landmarker = null;
const round5 = (v) => Math.round(v * 1e5) / 1e5;
let lastT = -1;

async function init(wasmBase, modelUrl) {
  // useModule=true picks the ES-module wasm loader, the only one a module worker can import.
  const fileset = await FilesetResolver.forVisionTasks(wasmBase, true);
  landmarker = await PoseLandmarker.createFromOptions(fileset, {
    baseOptions: { modelAssetPath: modelUrl, delegate: "CPU" },
    runningMode: "VIDEO",
    numPoses: 1,
  });
}

function detect(bitmap, tMs, frame) {
  // VIDEO mode needs strictly increasing timestamps for the landmarker's whole life, while a
  // replayed file's media time restarts at 0: give it this worker's own monotonic clock.
  const start = performance.now();
  const t = start > lastT + 1 ? start : lastT + 1;
  lastT = t;
  const result = landmarker.detectForVideo(bitmap, t);
  const ms = performance.now() - start;
  bitmap.close();
  const pose = result.landmarks && result.landmarks[0];
  // Five decimals (1/100 of a pixel at 1280 px) keep each message near 1 KB instead of 3 KB.
  const landmarks = pose
    ? pose.map((p) => [round5(p.x), round5(p.y), round5(p.z), round5(p.visibility ?? 0)])
    : null;
  if (result.close) result.close();
  return { type: "pose", frame, t_ms: tMs, landmarks, ms, startAt: performance.timeOrigin + start };
}

self.onmessage = async (event) => {
  const msg = event.data;
  try {
    if (msg.type === "init") {
      if (landmarker) landmarker.close();
      landmarker = null;
      await init(msg.wasmBase, msg.modelUrl);
      self.postMessage({ type: "ready" });
    } else if (msg.type === "frame") {
      if (!landmarker) {
        msg.bitmap.close();
        self.postMessage({ type: "error", message: "pose model not loaded yet", frame: msg.frame });
        return;
      }
      self.postMessage(detect(msg.bitmap, msg.t_ms, msg.frame));
    }
  } catch (err) {
    self.postMessage({ type: "error", message: String(err && err.message ? err.message : err), frame: msg.frame });
  }
};
