// The Sessions card: recorded session folders on the server, each downloadable as one zip and
// replayable through the current model at a chosen speed (GET /api/sessions; docs/web_app.md,
// "Recording sessions").
import { SPEEDS } from "/static/js/replay.js";

export function createSessionsPanel(card, { replay, log }) {
  card.replaceChildren();
  const title = document.createElement("h2");
  title.textContent = "Sessions";
  const note = document.createElement("div");
  note.className = "small";
  note.id = "sessions-note";
  const list = document.createElement("ul");
  list.id = "sessions";
  list.className = "sessions";
  const speed = document.createElement("select");
  speed.id = "replay-speed";
  for (const [value, text] of SPEEDS) speed.add(new Option(text, value));
  speed.value = "1";
  const speedLabel = document.createElement("label");
  speedLabel.className = "small";
  speedLabel.append("Replay speed ", speed);
  card.append(title, note, speedLabel, list);
  let enabled = false;

  function row(s) {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    const what = document.createElement("span");
    const model = s.model ? s.model.name : "no model";
    const source = s.source || (s.frames ? "camera" : "");
    what.textContent = `${s.id} · ${s.frames} frames · ${s.predictions} predictions · ${model}` +
      (source ? ` · ${source}` : "") + (s.files && s.files.video ? " · video" : "") +
      (s.recording ? " · recording…" : "");
    const zip = document.createElement("a");
    zip.href = `/api/sessions/${s.id}.zip`;
    zip.textContent = "zip";
    zip.className = "download";
    zip.setAttribute("download", `spml-session-${s.id}.zip`);
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = "Replay";
    again.className = "replay";
    again.disabled = Boolean(s.recording);
    again.onclick = () => replay(s.id);
    li.append(what, " ", zip, " ", again);
    return li;
  }

  async function refresh() {
    if (!enabled) return;
    try {
      const reply = await (await fetch("/api/sessions")).json();
      list.replaceChildren(...reply.sessions.slice(0, 20).map(row));
      note.textContent = reply.sessions.length ? "" : "No session recorded yet: tick Record, then Start.";
      window.spml.sessions = reply.sessions;
    } catch (err) {
      log(`cannot list sessions: ${err.message}`, true);
    }
  }

  function setEnabled(on) {
    enabled = on;
    card.hidden = false;
    document.getElementById("record").disabled = !on;
    if (!on) {
      list.replaceChildren();
      note.textContent = "Recording is off on this server (spml serve --sessions-dir DIR turns it on).";
    } else {
      refresh();
    }
  }

  return { refresh, setEnabled };
}
