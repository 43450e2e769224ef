// Web Bluetooth panel (Chrome/Edge): writes the server's decisions to a BLE device near this browser.
//
// The server runs spml's decision layer per connection and emits `action` events
// {actuator, action: "on"|"off"|"suppressed", label, reason, t_ms, frame, probability, payload_hex, run_in}.
// This panel writes the payloads of the actuators configured with `run_in: browser` to a device the
// user picks, with the same policy as the server's ActuatorRunner: at most one pending on-action (a newer
// action supersedes it), off actions are never dropped (identical pending offs coalesce, a failed off is
// retried), and the device reconnects with backoff when its link drops.
// The server may also emit `actuators` [{actuator, service_uuid, characteristic_uuid, with_response,
// device_name}] to preset the UUIDs; otherwise the HM-10 defaults (ffe0/ffe1) are used.

const BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb";
const RETRY_MS = 250;
const BACKOFF_MAX_MS = 10000;

/** Lower-case 128-bit UUID from 4 or 8 hex digits or a full UUID; throws on anything else. */
export function normalizeUuid(value) {
  const text = String(value || "").trim().toLowerCase().replace(/^0x/, "");
  if (/^[0-9a-f]{4}$/.test(text)) return `0000${text}${BASE_SUFFIX}`;
  if (/^[0-9a-f]{8}$/.test(text)) return `${text}${BASE_SUFFIX}`;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(text)) return text;
  throw new Error(`${JSON.stringify(value)} is not a Bluetooth UUID (use 4 hex digits such as ffe1 or a full UUID)`);
}

/** Bytes of a hex string ("01ff"); throws on odd length or non-hex characters. */
export function hexToBytes(hex) {
  const text = String(hex || "");
  if (text.length % 2 || /[^0-9a-fA-F]/.test(text)) throw new Error(`payload ${JSON.stringify(hex)} is not hex`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Why Web Bluetooth cannot be used here, or null when it can: the page is not a secure context, the
 * browser has the API switched off (Chromium on Linux: a flag), or the browser has no Web Bluetooth.
 */
export function bluetoothProblem(env) {
  const { secure, bluetooth, userAgent = "", host = "" } = env;
  if (!secure) {
    return `this page is not a secure context (http://${host}): Web Bluetooth needs https, or the server ` +
      "opened as http://localhost or http://127.0.0.1";
  }
  if (bluetooth) return null;
  const chromium = /Chrome\/|Chromium\//.test(userAgent) && !/Firefox\//.test(userAgent);
  if (chromium && /Linux/.test(userAgent) && !/Android/.test(userAgent)) {
    return "Web Bluetooth is switched off in this browser: on Linux, Chrome and Chromium need the flag " +
      "chrome://flags/#enable-experimental-web-platform-features (or start it with --enable-features=WebBluetooth)";
  }
  if (chromium) return "Web Bluetooth is switched off in this browser (check chrome://flags and the site's settings)";
  return "this browser has no Web Bluetooth: use Chrome or Edge";
}

/** The panel's status for a Web Bluetooth problem found before any device is asked for. */
export function problemStatus(env) {
  return env.secure ? "unsupported" : "insecure";
}

export const ADAPTER_OFF = "Bluetooth adapter off (or no adapter): switch it on (Linux: bluetoothctl power on); " +
  "the panel notices when it comes on";

/** The panel's status after a requestDevice/connect failure: denied, adapter-off or disconnected. */
export function errorStatus(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "denied";
  if (name === "NotFoundError" && /adapter/i.test(err.message)) return "adapter-off";
  return "disconnected";
}

/** A requestDevice/connect failure in words: permission denied, chooser cancelled, adapter off. */
export function explainBluetoothError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError") {
    return `permission denied (${err.message}): allow Bluetooth for this site (the lock icon next to the address), ` +
      "then connect again";
  }
  if (name === "SecurityError") {
    return `permission denied by the browser's security policy (${err.message}): the site's settings or a ` +
      "Permissions-Policy block Bluetooth here";
  }
  if (name === "NotFoundError") {
    if (/adapter/i.test(err.message)) return ADAPTER_OFF;
    return /cancel/i.test(err.message)
      ? "no device chosen: the chooser was closed"
      : `no matching device found (${err.message}): is it on, in range and advertising the service?`;
  }
  if (name === "NetworkError") return `the device did not answer (${err.message}): is it in range and on?`;
  return err && err.message ? err.message : String(err);
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

/**
 * Build the panel inside `container` and listen to `socket` (a Socket.IO client).
 * Returns the panel's live state (also at window.spmlBluetooth), useful in tests and the console.
 */
export function createBluetoothPanel(container, socket, options = {}) {
  const bluetooth = options.bluetooth || (typeof navigator !== "undefined" ? navigator.bluetooth : undefined);
  const state = {
    supported: Boolean(bluetooth),
    status: "disconnected",
    message: "",
    device: null,
    actuator: null,
    targets: [],
    writes: [], // {t, action, label, payload_hex, ok, ms, error, stale}
    dropped: 0,
    coalesced: 0,
    failed: 0,
    stale: 0, // on-actions dropped because they waited longer than maxAgeMs (no device yet, busy link)
    maxAgeMs: 500, // replaced by the actuator's max_age_ms from the server's `actuators` event
  };
  window.spmlBluetooth = state;

  let device = null;
  let characteristic = null;
  let pending = [];
  let busy = false;
  let userDisconnected = false;
  let backoff = 500;

  const dot = el("span", { class: "dot dot-off", title: "Bluetooth" });
  const statusText = el("span", { text: "not connected" });
  const actuatorSelect = el("select", { id: "bt-actuator" });
  const serviceInput = el("input", { id: "bt-service", value: "ffe0", size: "36", spellcheck: "false" });
  const charInput = el("input", { id: "bt-characteristic", value: "ffe1", size: "36", spellcheck: "false" });
  const nameInput = el("input", { id: "bt-name", placeholder: "any", size: "16", spellcheck: "false" });
  const withResponse = el("input", { id: "bt-with-response", type: "checkbox" });
  const connectBtn = el("button", { id: "bt-connect", type: "button", text: "Connect a device…" });
  const disconnectBtn = el("button", { id: "bt-disconnect", type: "button", text: "Disconnect" });
  const log = el("ul", { id: "bt-log", class: "log" });
  disconnectBtn.disabled = true;

  container.replaceChildren(
    el("h2", { text: "Bluetooth (this browser)" }),
    el("div", { class: "small" }, [dot, " ", statusText]),
    el("label", {}, ["Actuator ", actuatorSelect]),
    el("label", {}, ["Service UUID ", serviceInput]),
    el("label", {}, ["Characteristic UUID ", charInput]),
    el("label", {}, ["Device name ", nameInput]),
    el("label", {}, [withResponse, " write with response"]),
    el("div", { class: "controls" }, [connectBtn, disconnectBtn]),
    log,
  );

  function setStatus(status, message, dotClass) {
    state.status = status;
    state.message = message;
    statusText.textContent = message;
    dot.className = `dot ${dotClass}`;
  }

  function addLog(text, cls = "") {
    const item = el("li", { text: `${new Date().toLocaleTimeString()} ${text}` });
    if (cls) item.className = cls;
    log.prepend(item);
    while (log.children.length > 100) log.lastChild.remove();
  }

  function fillTargets(list) {
    state.targets = Array.isArray(list) ? list : [];
    actuatorSelect.replaceChildren(
      ...state.targets.map((t) => el("option", { value: t.actuator, text: t.actuator })),
    );
    if (!state.targets.length) {
      actuatorSelect.append(el("option", { value: "", text: "(none with run_in: browser)" }));
    }
    applyTarget(state.targets[0]);
  }

  function applyTarget(target) {
    state.actuator = target ? target.actuator : null;
    if (!target) return;
    if (target.service_uuid) serviceInput.value = target.service_uuid;
    if (target.characteristic_uuid) charInput.value = target.characteristic_uuid;
    if (target.device_name) nameInput.value = target.device_name;
    withResponse.checked = Boolean(target.with_response);
    if (Number.isFinite(target.max_age_ms)) state.maxAgeMs = target.max_age_ms;
  }

  actuatorSelect.addEventListener("change", () => {
    applyTarget(state.targets.find((t) => t.actuator === actuatorSelect.value));
  });

  const problem = options.problem !== undefined ? options.problem : bluetoothProblem({
    secure: typeof window !== "undefined" && window.isSecureContext, bluetooth,
    userAgent: typeof navigator !== "undefined" ? navigator.userAgent : "",
    host: typeof location !== "undefined" ? location.host : "",
  });
  // Each missing piece has its own status and words: insecure, unsupported (API absent or switched
  // off), adapter-off (getAvailability false), denied (requestDevice refused by the user or policy).
  // Connect stays enabled with the adapter off: getAvailability is a hint, requestDevice the answer.
  function onAvailability(available) {
    state.available = available;
    if (!available && state.status !== "connected") {
      setStatus("adapter-off", ADAPTER_OFF, "dot-off");
    } else if (available && state.status === "adapter-off") {
      setStatus("disconnected", "Bluetooth adapter on: connect a device", "dot-off");
    }
  }

  if (problem) {
    state.supported = false;
    setStatus(problemStatus({ secure: typeof window !== "undefined" && window.isSecureContext }), problem, "dot-off");
    connectBtn.disabled = true;
  } else if (bluetooth && bluetooth.getAvailability) {
    // The API is there; an adapter that is absent or switched off is the next thing that can be missing.
    bluetooth.getAvailability().then(onAvailability).catch(() => {});
    if (bluetooth.addEventListener) {
      bluetooth.addEventListener("availabilitychanged", (event) => onAvailability(Boolean(event.value)));
    }
  }

  async function connectGatt() {
    const service = normalizeUuid(serviceInput.value);
    const charUuid = normalizeUuid(charInput.value);
    setStatus("connecting", `connecting to ${device.name || device.id}…`, "dot-warn");
    const server = await device.gatt.connect();
    let svc;
    try {
      svc = await server.getPrimaryService(service);
    } catch (err) {
      throw new Error(`service ${service} not found on ${device.name || device.id} (${err.message})`);
    }
    try {
      characteristic = await svc.getCharacteristic(charUuid);
    } catch (err) {
      throw new Error(`characteristic ${charUuid} not found in service ${service} (${err.message})`);
    }
    backoff = 500;
    setStatus("connected", `connected to ${device.name || device.id}`, "dot-on");
    state.device = device.name || device.id;
    addLog(`connected to ${state.device}`);
    pump();
  }

  async function onConnectClick() {
    let service;
    try {
      service = normalizeUuid(serviceInput.value);
      normalizeUuid(charInput.value);
    } catch (err) {
      setStatus("error", err.message, "dot-off");
      return;
    }
    const filter = { services: [service] };
    if (nameInput.value.trim()) filter.name = nameInput.value.trim();
    try {
      device = await bluetooth.requestDevice({ filters: [filter], optionalServices: [service] });
    } catch (err) {
      setStatus(errorStatus(err), explainBluetoothError(err), "dot-off");
      addLog(explainBluetoothError(err), "error");
      return;
    }
    userDisconnected = false;
    device.addEventListener("gattserverdisconnected", onDisconnected);
    connectBtn.disabled = true;
    disconnectBtn.disabled = false;
    try {
      await connectGatt();
    } catch (err) {
      setStatus("error", err.message, "dot-off");
      addLog(`error: ${err.message}`, "error");
    }
  }

  function onDisconnected() {
    characteristic = null;
    if (userDisconnected) return;
    setStatus("disconnected", `${device.name || device.id} disconnected; reconnecting in ${backoff / 1000} s`, "dot-warn");
    addLog("device disconnected", "error");
    const delay = backoff;
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    setTimeout(async () => {
      if (userDisconnected || characteristic) return;
      try {
        await connectGatt();
      } catch (err) {
        setStatus("error", `${err.message}; retrying`, "dot-off");
        onDisconnected();
      }
    }, delay);
  }

  function onDisconnectClick() {
    userDisconnected = true;
    characteristic = null;
    if (device && device.gatt.connected) device.gatt.disconnect();
    connectBtn.disabled = !state.supported;
    disconnectBtn.disabled = true;
    setStatus("disconnected", "disconnected", "dot-off");
  }

  connectBtn.addEventListener("click", onConnectClick);
  disconnectBtn.addEventListener("click", onDisconnectClick);

  // Same drop/coalesce policy as spml_core.actuation.ActuatorRunner.
  function enqueue(ev) {
    const kept = [];
    for (const old of pending) {
      if (old.action === "on") state.dropped += 1;
      else kept.push(old);
    }
    if (ev.action === "off" && kept.length && kept[kept.length - 1].payload_hex === ev.payload_hex) {
      kept.pop();
      state.coalesced += 1;
    }
    kept.push({ ...ev, receivedAt: performance.now() });
    pending = kept;
    pump();
  }

  async function pump() {
    if (busy || !characteristic || !pending.length) return;
    busy = true;
    const ev = pending.shift();
    const t0 = performance.now();
    // As the server's runner: an on-action not started within max_age_ms is stale (e.g. queued while no
    // device was connected) and is dropped, so a stimulus is never delivered late. Offs always go out.
    if (ev.action === "on" && t0 - ev.receivedAt > state.maxAgeMs) {
      state.stale += 1;
      state.writes.push({ t: Date.now(), action: ev.action, label: ev.label, payload_hex: ev.payload_hex, ok: false, stale: true });
      addLog(`dropped stale ${ev.label} (${(t0 - ev.receivedAt).toFixed(0)} ms old)`, "error");
      busy = false;
      pump();
      return;
    }
    try {
      const bytes = hexToBytes(ev.payload_hex);
      if (withResponse.checked) await characteristic.writeValueWithResponse(bytes);
      else await characteristic.writeValueWithoutResponse(bytes);
      const ms = performance.now() - t0;
      // frame, queuedAt, startedAt and doneAt (epoch ms, sub-millisecond) let benchmarks/e2e.py time capture-to-actuation.
      state.writes.push({ t: Date.now(), action: ev.action, label: ev.label, payload_hex: ev.payload_hex, ok: true, ms,
                          frame: ev.frame, queuedAt: performance.timeOrigin + ev.receivedAt,
                          startedAt: performance.timeOrigin + t0, doneAt: performance.timeOrigin + performance.now() });
      addLog(`${ev.action} ${ev.label} → ${ev.payload_hex || "(empty)"} (${ms.toFixed(1)} ms)`);
    } catch (err) {
      state.failed += 1;
      state.writes.push({ t: Date.now(), action: ev.action, label: ev.label, payload_hex: ev.payload_hex, ok: false, error: err.message });
      addLog(`write failed: ${err.message}`, "error");
      const offPending = pending.some((p) => p.action === "off" && p.payload_hex === ev.payload_hex);
      if (ev.action === "off" && !offPending) {
        pending.unshift(ev); // offs are never dropped: retry after reconnecting
        busy = false;
        setTimeout(pump, RETRY_MS);
        return;
      }
    }
    busy = false;
    pump();
  }

  socket.on("actuators", (msg) => fillTargets(msg && msg.actuators ? msg.actuators : msg));
  socket.on("action", (ev) => {
    if (!ev || ev.run_in !== "browser" || ev.payload_hex == null) return;
    if (ev.action !== "on" && ev.action !== "off") return;
    if (state.actuator && ev.actuator !== state.actuator) return;
    enqueue(ev);
  });

  fillTargets(options.targets || []);
  return state;
}
