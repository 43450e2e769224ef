// spml live page: camera or replayed file -> pose (worker in this page, or the server) -> keypoints
// over Socket.IO -> predictions. Everything is loaded from this server; nothing from a CDN.
import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { Timeline } from "/static/timeline.js";
import { drawPose, clearOverlay } from "/static/overlay.js";
import { OneEuroFilter } from "/static/smoothing.js";
import { createBluetoothPanel } from "/static/js/bluetooth.js";
import { createSessionsPanel } from "/static/js/sessions.js";
import { createPacer } from "/static/js/replay.js";
import { compactLandmarks } from "/static/js/landmarks.js";

const $ = (id) => document.getElementById(id);

// Live state, also read by the browser test and handy in the console (window.spml).
const state = {
  connected: false,
  transport: null,
  reconnects: 0,
  framesSent: 0,
  poses: 0,
  posesWithPerson: 0,
  predictions: 0,
  lastPrediction: null,
  sid: null,
  actions: 0,
  lastAction: null,
  actuators: [],
  errors: [],
  mode: "browser",
  running: false,
  source: null,
  workerReady: false,
  model: null,
  every: 1,
  recording: null, // id of the session folder being recorded, if any
  sessions: [],
  panels: "stopped", // what the result panels show: live, stopped or disconnected
};
window.spml = state;
// Capture-to-actuation timing (benchmarks/e2e.py; open the page with ?timing): per frame, epoch ms of
// the camera's capture, the frame callback, pose done, keypoints sent and the prediction's arrival.
const timing = new URLSearchParams(location.search).has("timing") ? new Map() : null;
state.timing = timing ? [] : null;
const epoch = (t) => performance.timeOrigin + t;

function timeFrame(frame, key, value) {
  if (!timing) return;
  let t = timing.get(frame);
  if (!t) {
    t = { frame };
    timing.set(frame, t);
    state.timing.push(t);
    if (state.timing.length > 20000) timing.delete(state.timing.shift().frame);
  }
  t[key] = value;
}

// The model and "Predict every" this page chose (undefined until the first hello): restored on reconnect.
let chosen;

let config = null;
let sessionsPanel = null;
let socket = null;
let worker = null;
let workerBusy = false;
let awaitingServerPose = false;
let frameNo = 0;
let streamStart = 0;
let loopToken = 0;
let classes = [];
const sentAt = new Map();
const rtts = [];
const serverMs = [];
const pings = [];
const poseTimes = [];
const timeline = new Timeline($("timeline"), $("legend"));
const video = $("video");
const overlay = $("overlay");
const captureCanvas = document.createElement("canvas");

// Kinds: error, action, info. Errors are kept apart from the others' 60-line cap, so a stream of
// action lines never pushes an error out of the log.
function log(message, isError = false, kind = null) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${message}`;
  li.dataset.kind = isError ? "error" : kind || "info";
  if (isError) li.className = "error";
  const list = $("log");
  list.prepend(li);
  li.hidden = !logShows(li.dataset.kind);
  const keep = isError ? 60 : 60;
  const same = [...list.children].filter((x) => (x.dataset.kind === "error") === isError);
  for (const old of same.slice(keep)) old.remove();
}

function logShows(kind) {
  const filter = $("log-filter") ? $("log-filter").value : "all";
  return filter === "all" || filter === kind;
}

function filterLog() {
  for (const li of $("log").children) li.hidden = !logShows(li.dataset.kind);
}

// Result panels never show stale values: while disconnected, after Stop, or without a model they
// say so instead of the last class.
function showPanels(what) {
  state.panels = what;
  if (what === "live") return;
  $("label").textContent = what;
  $("label").classList.add("stale");
  $("decision").textContent = "decision: –";
  $("probabilities").replaceChildren();
  $("pred-frame").textContent = "–";
  $("pred-window").textContent = "–";
  for (const id of ["rtt", "server-ms", "pose-fps"]) $(id).textContent = "–";
  if (what === "disconnected") $("ping").textContent = "–";
}

function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function pushBounded(arr, v, n = 60) {
  arr.push(v);
  if (arr.length > n) arr.shift();
}

// ---------------------------------------------------------------- connection
function setConnection(status, cls) {
  $("conn-text").textContent = status;
  $("conn-dot").className = `dot ${cls}`;
  $("reconnect").hidden = cls === "dot-on";
}

function connect() {
  socket = io({ transports: ["websocket", "polling"], reconnectionDelayMax: 3000 });
  // The panel listens to `actuators` and `action` on this socket and writes run_in: browser actions.
  createBluetoothPanel($("bluetooth-card"), socket);
  socket.on("connect", () => {
    state.connected = true;
    state.sid = socket.id; // the server's session id: it names this page in the action log
    state.transport = socket.io.engine.transport.name;
    setConnection(`connected (${state.transport})`, "dot-on");
  });
  socket.on("disconnect", (reason) => {
    state.connected = false;
    awaitingServerPose = false;
    setConnection(`disconnected: ${reason}`, "dot-off");
    log(`disconnected (${reason})`, true);
    timeline.mark("disconnected", "disconnect");
    pings.length = 0;
    showPanels("disconnected");
  });
  socket.io.on("reconnect_attempt", (n) => setConnection(`reconnecting (attempt ${n})…`, "dot-warn"));
  socket.io.on("reconnect", () => {
    state.reconnects += 1;
    $("reconnects").textContent = state.reconnects;
    log("reconnected");
  });
  socket.on("connect_error", (err) => setConnection(`cannot connect: ${err.message}`, "dot-off"));
  socket.on("hello", onHello);
  socket.on("models", (msg) => fillModels(msg.models, state.model));
  socket.on("model_selected", onModelSelected);
  socket.on("prediction", onPrediction);
  socket.on("recording", onRecording);
  socket.on("actuators", (msg) => {
    state.actuators = (msg && msg.actuators) || [];
  });
  socket.on("action", onAction);
  socket.on("stream_ended", (msg) => {
    state.streamEnded = msg;
    const offs = msg.actions.filter((a) => a.action === "off").length;
    log(`stream ended (${msg.reason})${offs ? `: ${offs} device(s) switched off` : ""}`, false, "action");
  });
  socket.on("late", (msg) => {
    state.late = (state.late || 0) + msg.count;
    log(`server dropped ${msg.count} late frame(s) (older than ${msg.max_age_ms} ms)`, true);
  });
  socket.on("pose", onServerPose);
  socket.on("error", onServerError);
  socket.on("health_pong", (msg) => {
    // One sample jumps with the scheduler (2 to 129 ms seen): show the median of the last 15.
    pushBounded(pings, performance.now() - msg.t, 15);
    $("ping").textContent = median(pings).toFixed(1);
  });
  setInterval(() => {
    if (socket.connected) socket.emit("health_ping", { t: performance.now() });
  }, 2000);
}

function onHello(msg) {
  state.recordingEnabled = Boolean(msg.recording && msg.recording.enabled);
  sessionsPanel.setEnabled(state.recordingEnabled);
  if (chosen === undefined) {
    // First contact: the server's default model and settings are this page's.
    chosen = { model: msg.model || null, every: msg.every };
    fillModels(msg.models, msg.model);
    setModelInfo(msg.model, msg.classes || [], msg.window, msg.every);
    return;
  }
  // A reconnect starts a fresh server session with the server's defaults: restore what this page chose
  // (read before the list is refilled, which would otherwise show the server's default).
  fillModels(msg.models, chosen.model);
  if (chosen.model !== (msg.model || null) || chosen.every !== msg.every) {
    const known = !chosen.model || msg.models.some((m) => m.name === chosen.model);
    if (known) socket.emit("select_model", { name: chosen.model, every: chosen.every });
    else log(`model ${chosen.model} is no longer offered by the server`, true);
  } else {
    setModelInfo(msg.model, msg.classes || [], msg.window, msg.every);
  }
  if (state.recording && state.running) startRecording(); // the old folder was finished by the disconnect
}

function onModelSelected(msg) {
  chosen = { model: msg.name || null, every: msg.every };
  setModelInfo(msg.name, msg.classes, msg.window, msg.every);
  timeline.mark(msg.name ? `model ${msg.name}` : "no model", "model");
  if (msg.name) log(`model ${msg.name}: classes ${msg.classes.join(", ")}, window ${msg.window} frames`);
  else log("no model: classification stopped");
  if (!msg.name) showPanels(state.running ? "no model" : "stopped");
}

function setModelInfo(name, cls, window, every) {
  state.model = name || null;
  classes = cls || [];
  timeline.setClasses(classes);
  $("model-select").value = name || "";
  if (every) {
    $("every").value = every;
    state.every = every;
  }
  $("model-info").textContent = name
    ? `${name}: ${classes.length} classes, window ${window} frames, every ${every}`
    : "No model selected: choose a bundle or upload one.";
  showModelDetails(name);
  applyBundlePose();
}

let modelList = [];

function fillModels(models, current) {
  modelList = models;
  const select = $("model-select");
  const keep = current ?? select.value;
  select.replaceChildren(new Option("(none)", ""));
  for (const m of models) {
    const label = `${m.name}: ${m.model}, ${m.target} (${m.classes.join("/")}, ${m.window}f)`;
    select.add(new Option(label, m.name));
  }
  select.value = keep && models.some((m) => m.name === keep) ? keep : "";
  showModelDetails(state.model);
  applyBundlePose();
}

// What the chosen bundle is: type, target and classes, date, cross-validated score, provenance.
function showModelDetails(name) {
  const m = modelList.find((x) => x.name === name);
  const box = $("model-details");
  box.replaceChildren();
  if (!m) return;
  const score = m.score == null ? "not recorded" : `${(m.score * 100).toFixed(1)}% ${m.score_name}`;
  const rows = [
    ["type", m.model],
    ["target", m.target],
    ["classes", m.classes.join(", ")],
    ["created", m.created_at ? m.created_at.replace("T", " ").slice(0, 16) + " UTC" : "not recorded"],
    ["score", m.evaluation ? `${score} (${m.evaluation})` : score],
    ["baseline", m.baseline ? `${(m.baseline.chance_balanced_accuracy * 100).toFixed(1)}% (always the majority class)` +
      (m.baseline.beats_baseline === false ? ": the model does NOT beat it" : "") : "not recorded"],
    ["trained at", m.fps ? `${Number(m.fps).toFixed(1)} fps` : "frame rate not recorded"],
    ["pose model", m.pose_model || "not recorded"],
    ["frame size", m.frame_size ? m.frame_size.join("×") : "not recorded"],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    box.append(dt, dd);
  }
  for (const w of m.warnings || []) {
    const dd = document.createElement("dd");
    dd.className = "warning";
    dd.textContent = `warning: ${w}`;
    box.append(dd);
  }
}

function selectModel(name) {
  // "(none)" is a choice too: the server drops the model and classification stops. The page stops
  // sending frames now, not at the server's answer: a frame sent in between would only earn a no_model error.
  if (!name) state.model = null;
  socket.emit("select_model", { name: name || null, every: Number($("every").value) || 1 });
}

function onServerError(msg) {
  state.errors.push(msg);
  if (state.errors.length > 50) state.errors.shift();
  if (msg.event === "frame") awaitingServerPose = false;
  log(`server: ${msg.message}`, true);
}

// ---------------------------------------------------------------- predictions
function onPrediction(msg) {
  if (timing) {
    timeFrame(msg.frame, "predicted", epoch(performance.now()));
    timeFrame(msg.frame, "serverMs", msg.latency_ms);
    timeFrame(msg.frame, "status", msg.status);
  }
  state.predictions += 1;
  state.lastPrediction = msg;
  if (replayPacer) replayPacer.answered(msg.frame);
  if (msg.status && msg.status !== state.lastStatus) {
    // Marks for what interrupts classes (no person, unknown, late...); warming up and ok are the normal course.
    if (!["ok", "warming_up"].includes(msg.status)) timeline.mark(msg.status.replace("_", " "), "status");
    state.lastStatus = msg.status;
  }
  if (!state.running) return; // after Stop: nothing to show
  showRate(msg);
  if (msg.label == null) {
    // No class for this window: say why instead of showing the last class (docs/live.md).
    state.panels = "status";
    $("label").textContent = STATUS_TEXT[msg.status] || msg.status || "no class";
    $("label").classList.add("stale");
    $("probabilities").replaceChildren();
    $("pred-frame").textContent = msg.frame;
    $("decision").textContent = `decision: ${msg.decision ?? "–"}`;
    return;
  }
  if (state.panels !== "live") {
    $("label").classList.remove("stale");
    state.panels = "live";
  }
  const sent = sentAt.get(msg.frame);
  if (sent !== undefined) {
    pushBounded(rtts, performance.now() - sent);
    $("rtt").textContent = median(rtts).toFixed(1);
  }
  pushBounded(serverMs, msg.latency_ms);
  $("server-ms").textContent = median(serverMs).toFixed(2);
  $("label").textContent = msg.label;
  $("pred-frame").textContent = msg.frame;
  $("pred-window").textContent = msg.window;
  $("decision").textContent = `decision: ${msg.decision ?? "–"}`;
  const list = $("probabilities");
  list.replaceChildren();
  for (const [cls, p] of Object.entries(msg.probabilities).sort((a, b) => b[1] - a[1])) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = cls;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(p * 100).toFixed(1)}%`;
    fill.style.background = timeline.colour(cls);
    bar.append(fill);
    const pct = document.createElement("span");
    pct.textContent = `${(p * 100).toFixed(0)}%`;
    li.append(name, bar, pct);
    list.append(li);
  }
  // At the frame's stream time: a replay's media time, so annotations of the video line up.
  timeline.add(msg.label, msg.probabilities[msg.label], msg.t_ms);
}

// Why a window has no class (the result's status); the decision layer treats each as "off".
const STATUS_TEXT = {
  warming_up: "warming up…",
  no_person: "no person",
  low_visibility: "low visibility",
  too_slow: "too slow",
  unknown: "unknown",
  stale: "late",
};

// Input frame rate next to the bundle's: below the bundle's lowest supported rate, results say too_slow.
function showRate(msg) {
  if (msg.bundle_fps == null) return;
  const input = msg.input_fps == null ? "–" : msg.input_fps.toFixed(1);
  $("rate").textContent = `${input} / ${msg.bundle_fps.toFixed(0)}`;
  $("rate").title = `input fps / the bundle's fps (lowest supported input: ${msg.min_input_fps.toFixed(1)} fps)`;
}

// Actions of the server's decision layer, for every configured actuator (docs/actuation.md).
function onAction(ev) {
  state.actions += 1;
  state.lastAction = ev;
  const where = ev.run_in === "browser" ? "this browser" : "server";
  const why = ev.action === "suppressed" ? ` (suppressed: ${ev.reason})` : ev.reason === "bout" ? "" : ` (${ev.reason})`;
  log(`${ev.actuator} [${where}]: ${ev.action} ${ev.label}${why}`, false, "action");
}

// ---------------------------------------------------------------- pose
// The pose model the selected bundle was trained with (its features.pose): the page runs that model,
// and says so visibly when it cannot (not offered, server-side pose, another estimator) or the user picks another.
let poseAppliedFor = null; // the bundle whose pose model the page last switched to; a later pick is the user's
let lastPoseWarning = "";

function bundlePose() {
  const m = modelList.find((x) => x.name === state.model);
  return m && m.pose_model ? { model: m.pose_model, estimator: m.pose_estimator || "mediapipe", bundle: m.name } : null;
}

function applyBundlePose() {
  const want = bundlePose();
  if (!want) poseAppliedFor = null;
  else if (poseAppliedFor !== want.bundle) {
    poseAppliedFor = want.bundle;
    const select = $("pose-model");
    if (config && want.estimator === "mediapipe" && config.pose_models.includes(want.model) && select.value !== want.model) {
      select.value = want.model;
      log(`pose model ${want.model}: the one bundle ${want.bundle} was trained with`);
      if (worker) startWorker();
    }
  }
  checkPoseMatch();
}

function checkPoseMatch() {
  const box = $("pose-warning");
  const want = bundlePose();
  let text = "";
  if (want && config) {
    const server = state.mode === "server";
    const using = server ? config.pose_model : $("pose-model").value;
    const runs = server ? "server-side pose runs" : "this page runs";
    if (want.estimator !== "mediapipe") {
      text = `Bundle ${want.bundle} was trained on ${want.estimator} keypoints (model ${want.model}); ${runs} ` +
        `MediaPipe ${using}: predictions may be unreliable.`;
    } else if (using !== want.model) {
      const missing = config.pose_models.includes(want.model) ? "" : " (not available on this server: run make setup)";
      text = `Bundle ${want.bundle} expects pose model ${want.model}${missing}; ${runs} ${using}: ` +
        "predictions may be less reliable.";
    }
  }
  box.textContent = text;
  box.hidden = !text;
  if (text && text !== lastPoseWarning) log(text, true);
  lastPoseWarning = text;
}

function poseModelUrl() {
  return `/pose-models/${$("pose-model").value}.task`;
}

function startWorker() {
  if (worker) worker.terminate();
  state.workerReady = false;
  workerBusy = false;
  worker = new Worker("/static/pose-worker.js", { type: "module" });
  worker.onmessage = (event) => {
    const msg = event.data;
    if (msg.type === "ready") {
      state.workerReady = true;
      log(`pose model ${$("pose-model").value} loaded in the page`);
    } else if (msg.type === "pose") {
      workerBusy = false;
      if (timing) {
        timeFrame(msg.frame, "poseStart", msg.startAt);
        timeFrame(msg.frame, "poseMs", msg.ms);
      }
      onPose(msg.frame, msg.t_ms, msg.landmarks);
    } else if (msg.type === "error") {
      workerBusy = false;
      log(`pose worker: ${msg.message}`, true);
    }
  };
  worker.onerror = (event) => log(`pose worker failed: ${event.message}`, true);
  worker.postMessage({ type: "init", wasmBase: "/static/vendor/tasks-vision/wasm", modelUrl: poseModelUrl() });
}

// The page's landmarks get the same One Euro filter as keypoints extracted offline (on by default).
const smoother = new OneEuroFilter();

function onPose(frame, tMs, rawLandmarks) {
  // A pose result still in flight at Stop is neither drawn nor sent (its video is gone).
  if (!state.running || !video.videoWidth) return;
  const landmarks = smoother.apply(rawLandmarks, tMs);
  state.poses += 1;
  if (landmarks) state.posesWithPerson += 1;
  const now = performance.now();
  pushBounded(poseTimes, now, 30);
  if (poseTimes.length > 1) {
    const fps = (poseTimes.length - 1) / ((now - poseTimes[0]) / 1000);
    $("pose-fps").textContent = fps.toFixed(1);
  }
  drawPose(overlay, video, landmarks, config.connections);
  // Without a model the server would only answer with errors: the overlay is enough (unless recording).
  if (!socket.connected || (!state.model && !state.recording)) return;
  sentAt.set(frame, performance.now());
  if (sentAt.size > 300) sentAt.delete(sentAt.keys().next().value);
  if (timing) {
    timeFrame(frame, "poseDone", epoch(now));
    timeFrame(frame, "sent", epoch(performance.now()));
  }
  socket.emit("keypoints", {
    frame,
    t_ms: tMs,
    landmarks: compactLandmarks(landmarks),
    width: video.videoWidth,
    height: video.videoHeight,
  });
  state.framesSent += 1;
}

function onServerPose(msg) {
  awaitingServerPose = false;
  onPoseFromServer(msg);
}

function onPoseFromServer(msg) {
  if (!state.running) return;
  state.poses += 1;
  if (msg.landmarks) state.posesWithPerson += 1;
  const now = performance.now();
  pushBounded(poseTimes, now, 30);
  if (poseTimes.length > 1) {
    $("pose-fps").textContent = ((poseTimes.length - 1) / ((now - poseTimes[0]) / 1000)).toFixed(1);
  }
  drawPose(overlay, video, msg.landmarks, config.connections);
}

async function sendJpeg(frame, tMs) {
  const scale = Math.min(1, 640 / video.videoWidth);
  captureCanvas.width = Math.round(video.videoWidth * scale);
  captureCanvas.height = Math.round(video.videoHeight * scale);
  captureCanvas.getContext("2d").drawImage(video, 0, 0, captureCanvas.width, captureCanvas.height);
  const blob = await new Promise((resolve) => captureCanvas.toBlob(resolve, "image/jpeg", 0.8));
  const image = await blob.arrayBuffer();
  sentAt.set(frame, performance.now());
  socket.emit("frame", { frame, t_ms: tMs, image });
  state.framesSent += 1;
}

// ---------------------------------------------------------------- frame loop
function mediaTime(meta) {
  if (state.source === "replay") return (meta && meta.mediaTime !== undefined ? meta.mediaTime : video.currentTime) * 1000;
  return performance.now() - streamStart;
}

async function onVideoFrame(token, meta) {
  if (token !== loopToken || !state.running) return;
  if (video.videoWidth > 0 && video.readyState >= 2) {
    const tMs = mediaTime(meta);
    if (state.mode === "browser") {
      if (state.workerReady && !workerBusy) {
        workerBusy = true;
        const frame = frameNo++;
        if (timing) {
          // captureTime: when the camera took the frame (getUserMedia sources); else when it was presented.
          timeFrame(frame, "capture", epoch(meta && (meta.captureTime ?? meta.presentationTime)));
          timeFrame(frame, "captureKind", meta && meta.captureTime !== undefined ? "captureTime" : "presentationTime");
          timeFrame(frame, "callback", epoch(performance.now()));
        }
        try {
          const bitmap = await createImageBitmap(video, poseInputSize());
          if (timing) timeFrame(frame, "grabbed", epoch(performance.now()));
          worker.postMessage({ type: "frame", bitmap, t_ms: tMs, frame }, [bitmap]);
        } catch (err) {
          workerBusy = false;
          log(`cannot grab frame: ${err.message}`, true);
        }
      }
    } else if (socket.connected && !awaitingServerPose) {
      awaitingServerPose = true;
      sendJpeg(frameNo++, tMs).catch((err) => {
        awaitingServerPose = false;
        log(`cannot send frame: ${err.message}`, true);
      });
    }
  }
  scheduleFrame(token);
}

// ?poseInputMax=N hands the worker frames downscaled to at most N px on the long side (landmarks stay
// normalised 0..1 to the frame; the width/height sent are the camera's). Off by default: measured with
// benchmarks/e2e.py --camera 1280x720 (docs/web_app.md), 640 px saved no time (the resize costs what
// the smaller upload saves; the landmark model's inference dominates), and whole frames keep the
// keypoints as close as possible to those extracted offline from full-size video.
const POSE_INPUT_MAX = Number(new URLSearchParams(location.search).get("poseInputMax") ?? 0);

function poseInputSize() {
  const scale = POSE_INPUT_MAX / Math.max(video.videoWidth, video.videoHeight);
  if (!(scale > 0 && scale < 1)) return undefined;
  return { resizeWidth: Math.round(video.videoWidth * scale), resizeHeight: Math.round(video.videoHeight * scale),
           resizeQuality: "low" };
}

function scheduleFrame(token) {
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback((_now, meta) => onVideoFrame(token, meta));
  else requestAnimationFrame(() => onVideoFrame(token, null));
}

function beginStream(source, name = null) {
  state.source = source;
  state.sourceName = name;
  state.running = true;
  frameNo = 0;
  streamStart = performance.now();
  sentAt.clear();
  smoother.reset();
  timeline.clear();
  timeline.start();
  clearOverlay(overlay);
  if (socket.connected) socket.emit("reset");
  showPanels(state.model ? "starting…" : "no model");
  if ($("record").checked) startRecording();
  $("stage-hint").hidden = true;
  $("stop").disabled = false;
  loopToken += 1;
  if (source !== "session") scheduleFrame(loopToken);
}

// The server switches this stream's devices off at once and stops classifying it.
function endStream(reason) {
  if (socket && socket.connected) socket.emit("end_stream", { reason });
  if (reason !== "stop") timeline.mark(reason.replace("_", " "), "stop");
}

function stopStream(reason = "stop") {
  const wasRunning = state.running;
  state.running = false;
  loopToken += 1;
  if (wasRunning) endStream(typeof reason === "string" ? reason : "stop");
  if (state.recording || mediaRecorder) stopRecording();
  if (wasRunning) {
    timeline.mark("stop", "stop");
    showPanels(state.connected ? "stopped" : "disconnected");
  }
  if (video.srcObject) {
    for (const track of video.srcObject.getTracks()) track.stop();
    video.srcObject = null;
  }
  if (video.src) {
    URL.revokeObjectURL(video.src);
    video.removeAttribute("src");
    video.load();
  }
  $("stop").disabled = true;
  $("stage-hint").hidden = false;
}

async function startCamera() {
  stopStream();
  try {
    const [width, height] = $("resolution").value.split("x").map(Number);
    const wanted = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
    if ($("camera").value) wanted.deviceId = { exact: $("camera").value };
    const stream = await navigator.mediaDevices.getUserMedia({ audio: false, video: wanted });
    video.srcObject = stream;
    await video.play();
    const track = stream.getVideoTracks()[0];
    state.camera = { label: track.label, deviceId: track.getSettings().deviceId, width: video.videoWidth,
                     height: video.videoHeight };
    log(`camera ${track.label || ""} ${video.videoWidth}x${video.videoHeight}`);
    await listCameras();
    beginStream("camera", null);
  } catch (err) {
    log(`camera unavailable: ${err.message}`, true);
  }
}

async function startReplay(file) {
  stopStream();
  video.src = URL.createObjectURL(file);
  video.loop = false;
  try {
    await video.play();
    log(`replaying ${file.name} (${video.videoWidth}x${video.videoHeight})`);
    beginStream("replay", file.name);
  } catch (err) {
    log(`cannot play ${file.name}: ${err.message}`, true);
  }
}

// Cameras are listed with their labels once the page may use one (labels are empty before).
async function listCameras() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const select = $("camera");
  const keep = (state.camera && state.camera.deviceId) || select.value;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  state.cameras = devices.map((d) => ({ deviceId: d.deviceId, label: d.label }));
  select.replaceChildren(new Option("default camera", ""));
  devices.forEach((d, i) => d.deviceId && select.add(new Option(d.label || `camera ${i + 1}`, d.deviceId)));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

// ---------------------------------------------------------------- recording
let mediaRecorder = null;

function startRecording() {
  if (!state.recordingEnabled) {
    log("recording is disabled on this server (start spml serve with --sessions-dir DIR)", true);
    return;
  }
  if (!socket.connected) return;
  socket.emit("record", { on: true, source: state.sourceName, pose_model: $("pose-model").value || null,
                          pose_where: state.mode });
  state.recording = "starting";
  const stream = video.srcObject || (video.captureStream ? video.captureStream() : null);
  if ($("record-video").checked && stream && window.MediaRecorder && state.source !== "session") {
    const chunks = [];
    const rec = new MediaRecorder(stream, { mimeType: "video/webm" });
    rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    rec.onstop = () => uploadVideo(rec.sessionId, new Blob(chunks, { type: "video/webm" }));
    rec.start(1000);
    mediaRecorder = rec;
  }
}

function stopRecording() {
  if (socket.connected && state.recording) socket.emit("record", { on: false });
  if (mediaRecorder) {
    mediaRecorder.sessionId = mediaRecorder.sessionId || state.recording;
    if (mediaRecorder.state !== "inactive") mediaRecorder.stop();
    mediaRecorder = null;
  }
}

function onRecording(msg) {
  if (msg.on) {
    state.recording = msg.id;
    if (mediaRecorder) mediaRecorder.sessionId = msg.id;
    log(`recording session ${msg.id}`);
  } else {
    if (state.recording === msg.id) state.recording = null;
    if (msg.session.discarded) log(`session ${msg.id}: nothing was streamed, no folder kept`);
    else log(`session ${msg.id} recorded: ${msg.session.frames} frames, ${msg.session.predictions} predictions`);
  }
  $("rec-dot").hidden = !state.recording;
  sessionsPanel.refresh();
}

async function uploadVideo(id, blob) {
  if (!id || id === "starting" || !blob.size) return;
  const headers = { "Content-Type": "video/webm", "X-CSRF-Token": config.csrf_token || "" };
  const response = await fetch(`/api/sessions/${id}/video`, { method: "POST", body: blob, headers });
  if (response.ok) log(`session ${id}: video saved (${(blob.size / 1024).toFixed(0)} KiB)`);
  else log(`session ${id}: video refused: ${(await response.json().catch(() => ({}))).error || response.status}`, true);
  sessionsPanel.refresh();
}

// The replay in progress (js/replay.js): told of each prediction, so "as fast as the server answers" can pace.
let replayPacer = null;

// A recorded session's keypoints through the current model, at the chosen speed (their recorded t_ms
// unchanged, so the server's time grid sees the recorded timing).
async function replaySession(id) {
  stopStream();
  const response = await fetch(`/api/sessions/${id}/keypoints`);
  if (!response.ok) {
    log(`cannot replay session ${id}: ${(await response.json().catch(() => ({}))).error}`, true);
    return;
  }
  const rec = await response.json();
  if (!rec.frames.length) {
    log(`session ${id} holds no frames`, true);
    return;
  }
  log(`replaying session ${id} (${rec.frames.length} frames) through ${state.model || "no model"}`);
  const speed = $("replay-speed") ? $("replay-speed").value : "1";
  beginStream("session", `session ${id}`);
  state.replayed = id;
  const token = loopToken;
  const pacer = createPacer(speed);
  replayPacer = pacer;
  const start = performance.now();
  state.replay = { id, speed, frames: rec.frames.length, sent: 0, wallMs: null,
                   recordedMs: rec.frames[rec.frames.length - 1].t_ms - rec.frames[0].t_ms };
  for (const f of rec.frames) {
    await pacer.before(f);
    if (token !== loopToken || !state.running) {
      if (replayPacer === pacer) replayPacer = null;
      return;
    }
    if (!socket.connected) continue;
    pacer.sent(f.frame);
    state.replay.sent += 1;
    sentAt.set(f.frame, performance.now());
    if (sentAt.size > 300) sentAt.delete(sentAt.keys().next().value);
    state.poses += 1;
    if (f.landmarks) state.posesWithPerson += 1;
    if (state.model || state.recording) {
      socket.emit("keypoints", { frame: f.frame, t_ms: f.t_ms, landmarks: compactLandmarks(f.landmarks), width: rec.width,
                                 height: rec.height });
      state.framesSent += 1;
    }
  }
  state.replay.wallMs = performance.now() - start;
  replayPacer = null;
  log(`replay of session ${id} finished (${speed === "max" ? "as fast as the server answered" : `${speed}×`}, ` +
      `${(state.replay.wallMs / 1000).toFixed(1)} s for ${(state.replay.recordedMs / 1000).toFixed(1)} s recorded)`);
  state.running = false;
  $("stop").disabled = true;
}

// Annotations of a replayed video (spml's seed JSON: annotations[].label with metadata.system
// startTime/endTime in seconds) drawn under the timeline's columns.
async function loadAnnotations(file) {
  try {
    const data = JSON.parse(await file.text());
    const items = Array.isArray(data) ? data : data.annotations;
    if (!Array.isArray(items)) throw new Error("no annotations list");
    const ranges = [];
    for (const a of items) {
      const sys = (a && a.metadata && a.metadata.system) || a || {};
      const start = sys.startTime ?? sys.start_time;
      const end = sys.endTime ?? sys.end_time;
      if (a && a.label && Number.isFinite(start) && Number.isFinite(end)) {
        ranges.push({ label: a.label, start_ms: start * 1000, end_ms: end * 1000 });
      }
    }
    if (!ranges.length) throw new Error("no annotation with a label, startTime and endTime (seconds)");
    timeline.setAnnotations(ranges);
    state.annotations = ranges.length;
    log(`annotations ${file.name}: ${ranges.length} ranges on the timeline`);
  } catch (err) {
    log(`cannot read annotations ${file.name}: ${err.message}`, true);
  }
}

// ---------------------------------------------------------------- upload
async function uploadBundle(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) {
    log("choose a .zip bundle first", true);
    return;
  }
  const body = new FormData();
  body.append("bundle", file);
  // The server accepts changes only with the CSRF token it gave this page (GET /api/config).
  const headers = { "X-CSRF-Token": config.csrf_token };
  const response = await fetch("/api/models", { method: "POST", body, headers });
  const reply = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (response.ok) {
    // An upload never switches a running session's model: it joins the list, to be chosen.
    log(`uploaded bundle ${reply.model.name}: choose it in the list to use it`);
  } else {
    log(`upload refused: ${reply.error}`, true);
  }
}

// ---------------------------------------------------------------- boot
async function boot() {
  config = await (await fetch("/api/config")).json();
  state.mode = config.browser_pose ? "browser" : "server";
  $("pose-mode").value = state.mode;
  $("pose-model").disabled = state.mode === "server";
  if (!config.browser_pose) {
    $("pose-mode").options[0].disabled = true;
    log("in-page pose is unavailable (vendor assets missing; run make setup): using the server", true);
  }
  for (const name of config.pose_models) $("pose-model").add(new Option(name, name));
  $("pose-model").value = config.pose_models.includes(config.pose_model) ? config.pose_model : config.pose_models[0];
  if (!config.pose_models.length) log("no pose model bundles on the server (run make setup)", true);
  setModelInfo(null, [], null, config.every);
  $("upload-form").hidden = !config.uploads;
  sessionsPanel = createSessionsPanel($("sessions-card"), { replay: replaySession, log });
  sessionsPanel.setEnabled(Boolean(config.recording && config.recording.enabled));
  $("record").checked = Boolean(config.recording && config.recording.all);
  connect();
  listCameras().catch(() => {});
  if (state.mode === "browser" && config.pose_models.length) startWorker();

  $("start-camera").onclick = startCamera;
  $("replay-file").onchange = (e) => e.target.files[0] && startReplay(e.target.files[0]);
  $("stop").onclick = () => stopStream("stop");
  $("annotations-file").onchange = (e) => e.target.files[0] && loadAnnotations(e.target.files[0]);
  // A hidden tab gets no video frames: end the stream (devices off) rather than leave it hanging.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden" && state.running) stopStream("hidden");
  });
  window.addEventListener("pagehide", () => {
    if (state.running) endStream("closed");
  });
  $("log-filter").onchange = filterLog;
  $("record").onchange = (e) => {
    if (!state.running) return;
    if (e.target.checked) startRecording();
    else stopRecording();
  };
  video.onended = () => {
    log("replay finished");
    if (state.recording || mediaRecorder) stopRecording();
    if (state.running) endStream("replay_end");
    state.running = false;
    showPanels("replay finished");
    $("stop").disabled = true;
  };
  $("pose-mode").onchange = (e) => {
    state.mode = e.target.value;
    // Server-side pose uses the server's configured model; the picker applies to the page only.
    $("pose-model").disabled = state.mode === "server";
    clearOverlay(overlay);
    if (state.mode === "browser" && !worker) startWorker();
    if (socket.connected) socket.emit("reset");
    checkPoseMatch();
  };
  $("pose-model").onchange = () => {
    if (state.mode === "browser") startWorker();
    checkPoseMatch();
  };
  $("model-select").onchange = (e) => selectModel(e.target.value);
  $("every").onchange = () => selectModel($("model-select").value);
  $("upload-form").onsubmit = uploadBundle;
  $("reconnect").onclick = () => {
    if (!socket.connected) socket.connect();
  };
}

boot().catch((err) => log(`start-up failed: ${err.message}`, true));
