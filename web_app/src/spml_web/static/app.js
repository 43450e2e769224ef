// spml live page: camera or replayed file -> pose (worker in this page, or the server) -> keypoints
// over Socket.IO -> predictions. Everything is loaded from this server; nothing from a CDN.
import { io } from "/static/vendor/socket.io/socket.io.esm.min.js";
import { Timeline } from "/static/timeline.js";
import { drawPose, clearOverlay } from "/static/overlay.js";
import { createBluetoothPanel } from "/static/js/bluetooth.js";

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
};
window.spml = state;

let config = null;
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
const poseTimes = [];
const timeline = new Timeline($("timeline"), $("legend"));
const video = $("video");
const overlay = $("overlay");
const captureCanvas = document.createElement("canvas");

function log(message, isError = false) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${message}`;
  if (isError) li.className = "error";
  const list = $("log");
  list.prepend(li);
  while (list.children.length > 60) list.lastChild.remove();
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
  socket.on("actuators", (msg) => {
    state.actuators = (msg && msg.actuators) || [];
  });
  socket.on("action", onAction);
  socket.on("pose", onServerPose);
  socket.on("error", onServerError);
  socket.on("health_pong", (msg) => {
    $("ping").textContent = (performance.now() - msg.t).toFixed(1);
  });
  setInterval(() => {
    if (socket.connected) socket.emit("health_ping", { t: performance.now() });
  }, 2000);
}

function onHello(msg) {
  fillModels(msg.models, msg.model);
  const wanted = $("model-select").value;
  // A reconnect starts a fresh server session: restore the model this page had selected.
  if (wanted && wanted !== msg.model) selectModel(wanted);
  else setModelInfo(msg.model, msg.classes || [], msg.window, msg.every);
}

function onModelSelected(msg) {
  setModelInfo(msg.name, msg.classes, msg.window, msg.every);
  log(`model ${msg.name}: classes ${msg.classes.join(", ")}, window ${msg.window} frames`);
}

function setModelInfo(name, cls, window, every) {
  state.model = name || null;
  classes = cls || [];
  timeline.setClasses(classes);
  if (name) $("model-select").value = name;
  if (every) $("every").value = every;
  $("model-info").textContent = name
    ? `${name}: ${classes.length} classes, window ${window} frames, every ${every}`
    : "No model selected: choose a bundle or upload one.";
}

function fillModels(models, current) {
  const select = $("model-select");
  const keep = current ?? select.value;
  select.replaceChildren(new Option("(none)", ""));
  for (const m of models) {
    const label = `${m.name} (${m.classes.join("/")}, ${m.window}f)`;
    select.add(new Option(label, m.name));
  }
  if (keep && models.some((m) => m.name === keep)) select.value = keep;
}

function selectModel(name) {
  if (!name) return;
  socket.emit("select_model", { name, every: Number($("every").value) || 1 });
}

function onServerError(msg) {
  state.errors.push(msg);
  if (state.errors.length > 50) state.errors.shift();
  if (msg.event === "frame") awaitingServerPose = false;
  log(`server: ${msg.message}`, true);
}

// ---------------------------------------------------------------- predictions
function onPrediction(msg) {
  state.predictions += 1;
  state.lastPrediction = msg;
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
  timeline.add(msg.label, msg.probabilities[msg.label]);
}

// Actions of the server's decision layer, for every configured actuator (docs/actuation.md).
function onAction(ev) {
  state.actions += 1;
  state.lastAction = ev;
  const where = ev.run_in === "browser" ? "this browser" : "server";
  const why = ev.action === "suppressed" ? ` (suppressed: ${ev.reason})` : ev.reason === "bout" ? "" : ` (${ev.reason})`;
  log(`${ev.actuator} [${where}]: ${ev.action} ${ev.label}${why}`);
}

// ---------------------------------------------------------------- pose
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
      onPose(msg.frame, msg.t_ms, msg.landmarks);
    } else if (msg.type === "error") {
      workerBusy = false;
      log(`pose worker: ${msg.message}`, true);
    }
  };
  worker.onerror = (event) => log(`pose worker failed: ${event.message}`, true);
  worker.postMessage({ type: "init", wasmBase: "/static/vendor/tasks-vision/wasm", modelUrl: poseModelUrl() });
}

function onPose(frame, tMs, landmarks) {
  state.poses += 1;
  if (landmarks) state.posesWithPerson += 1;
  const now = performance.now();
  pushBounded(poseTimes, now, 30);
  if (poseTimes.length > 1) {
    const fps = (poseTimes.length - 1) / ((now - poseTimes[0]) / 1000);
    $("pose-fps").textContent = fps.toFixed(1);
  }
  drawPose(overlay, video, landmarks, config.connections);
  // Without a model the server would only answer with errors: the overlay is enough.
  if (!socket.connected || !state.model) return;
  sentAt.set(frame, performance.now());
  if (sentAt.size > 300) sentAt.delete(sentAt.keys().next().value);
  socket.emit("keypoints", {
    frame,
    t_ms: tMs,
    landmarks,
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
        try {
          const bitmap = await createImageBitmap(video);
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

function scheduleFrame(token) {
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback((_now, meta) => onVideoFrame(token, meta));
  else requestAnimationFrame(() => onVideoFrame(token, null));
}

function beginStream(source) {
  state.source = source;
  state.running = true;
  frameNo = 0;
  streamStart = performance.now();
  sentAt.clear();
  timeline.clear();
  clearOverlay(overlay);
  if (socket.connected) socket.emit("reset");
  $("stage-hint").hidden = true;
  $("stop").disabled = false;
  loopToken += 1;
  scheduleFrame(loopToken);
}

function stopStream() {
  state.running = false;
  loopToken += 1;
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
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } },
    });
    video.srcObject = stream;
    await video.play();
    log(`camera ${video.videoWidth}x${video.videoHeight}`);
    beginStream("camera");
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
    beginStream("replay");
  } catch (err) {
    log(`cannot play ${file.name}: ${err.message}`, true);
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
  const response = await fetch("/api/models", { method: "POST", body });
  const reply = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (response.ok) {
    log(`uploaded bundle ${reply.model.name}`);
    $("model-select").value = reply.model.name;
    selectModel(reply.model.name);
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
  connect();
  if (state.mode === "browser" && config.pose_models.length) startWorker();

  $("start-camera").onclick = startCamera;
  $("replay-file").onchange = (e) => e.target.files[0] && startReplay(e.target.files[0]);
  $("stop").onclick = stopStream;
  video.onended = () => {
    log("replay finished");
    state.running = false;
    $("stop").disabled = true;
  };
  $("pose-mode").onchange = (e) => {
    state.mode = e.target.value;
    // Server-side pose uses the server's configured model; the picker applies to the page only.
    $("pose-model").disabled = state.mode === "server";
    clearOverlay(overlay);
    if (state.mode === "browser" && !worker) startWorker();
    if (socket.connected) socket.emit("reset");
  };
  $("pose-model").onchange = () => {
    if (state.mode === "browser") startWorker();
  };
  $("model-select").onchange = (e) => selectModel(e.target.value);
  $("every").onchange = () => selectModel($("model-select").value);
  $("upload-form").onsubmit = uploadBundle;
  $("reconnect").onclick = () => {
    if (!socket.connected) socket.connect();
  };
}

boot().catch((err) => log(`start-up failed: ${err.message}`, true));
