// dreamer play: draws the frames the server generates and sends what the player does (dreamer_model/play/messages.py).
"use strict";

const $ = (id) => document.getElementById(id);
const SIZE = 400; // the longer side of a canvas, in screen pixels
let controls = null; // the store's control scheme (hello.controls)
let keyToAction = new Map(); // KeyboardEvent.code → action name
let held = []; // discrete: held action names, latest last
const buttons = new Set(); // minecraft: held buttons
let camera = [0, 0]; // minecraft: degrees moved since the last message
let flushQueued = false;
let paused = false, recording = false;
let errorTimer = null;
let shownState = { replaying: false, recording: false };

const ws = new WebSocket(new URL("ws", location.href.replace(/^http/, "ws")));
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const send = (message) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); };

function draw(canvas, width, height, base64) {
  const rgb = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const small = new ImageData(width, height);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    small.data[j] = rgb[i]; small.data[j + 1] = rgb[i + 1]; small.data[j + 2] = rgb[i + 2]; small.data[j + 3] = 255;
  }
  const scale = Math.max(1, Math.floor(SIZE / Math.max(width, height)));
  if (canvas.width !== width * scale || canvas.height !== height * scale) {
    canvas.width = width * scale; canvas.height = height * scale;
  }
  canvas.dataset.scale = scale;
  const off = new OffscreenCanvas(width, height);
  off.getContext("2d").putImageData(small, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false; // nearest neighbour
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}

function legend(c) {
  const rows = c.keys.map((k) => `<tr><td><kbd>${esc(k.label)}</kbd></td><td>${esc(k.action)}</td></tr>`);
  if (c.scheme === "minecraft") {
    for (const [button, action] of Object.entries(c.mouse)) {
      const name = { 0: "left click", 1: "middle click", 2: "right click" }[button];
      rows.push(`<tr><td><kbd>${name}</kbd></td><td>${action}</td></tr>`);
    }
    rows.push(`<tr><td><kbd>mouse move</kbd></td><td>camera (click the frame to lock the pointer, Esc to free it; ` +
              `${c.camera.degrees_per_unit.toFixed(3)}°/unit, each step clipped at ±${c.camera.clip}° and binned ` +
              `as the store's 121 mu-law classes)</td></tr>`);
  }
  if (c.scheme === "discrete") rows.push("<tr><td><kbd>no key</kbd></td><td>noop</td></tr>");
  $("legend").innerHTML = rows.join("") || "<tr><td>none</td></tr>";
}

function hello(m) {
  controls = m.controls;
  keyToAction = new Map(controls.keys.map((k) => [k.code, k.action]));
  legend(controls);
  if (controls.scheme === "none") { $("message").textContent = controls.message; $("message").hidden = false; }
  $("k").textContent = m.K;
  $("context").textContent = `${m.context} real frames`;
  $("episode").innerHTML = m.episodes.map((e) => `<option value="${esc(e.id)}">${esc(e.id)} (${e.length} frames` +
    `${m.heldout.includes(e.id) ? ", held out" : ""})</option>`).join("");
  document.title = `dreamer play · ${m.game || m.source}`;
}

function frame(m) {
  draw($("imagined"), m.width, m.height, m.image);
  $("real-figure").hidden = m.real === null;
  if (m.real !== null) draw($("real"), m.width, m.height, m.real);
  $("imagined").dataset.step = m.step;
  $("imagined").dataset.kind = m.kind;
  $("imagined-caption").textContent = m.kind === "context" ? "real context frame" : "imagined";
  $("action").textContent = m.action;
  $("step").textContent = m.step;
  $("origin").textContent = `${m.episode}, frames ${m.start}–${m.start + m.context - 1}`;
  if (m.kind === "context" && document.activeElement !== $("start")) { $("episode").value = m.episode; $("start").value = m.start; }
  const speed = m.gen_fps === null ? "–" : `${m.gen_fps.toFixed(1)} frames/s (tick ${m.tick_fps.toFixed(1)}/s)`;
  $("speed").textContent = m.behind ? `${speed}: slower than the tick, frames come as fast as they are made ` +
    `and only the latest key counts` : speed;
  $("speed").className = m.behind ? "behind" : "";
  paused = m.paused;
  $("pause").textContent = paused ? "resume" : "pause";
  shownState = { replaying: m.replaying, recording: m.recording };
  showState();
}

function showState() {
  $("status").textContent = [paused ? "paused" : "playing", shownState.replaying ? "replaying recorded actions" : "",
                             shownState.recording ? "recording" : ""].filter(Boolean).join(", ");
}

ws.onmessage = (event) => {
  const m = JSON.parse(event.data);
  if (m.type === "hello") hello(m);
  else if (m.type === "frame") frame(m);
  else if (m.type === "status") $("status").textContent = m.message;
  else if (m.type === "error") {
    $("error").textContent = m.message; $("error").hidden = false;
    clearTimeout(errorTimer); errorTimer = setTimeout(() => { $("error").hidden = true; }, 8000);
  }
  else if (m.type === "recording") {
    shownState.recording = false;
    showState();
    const link = $("download");
    link.href = m.url; link.download = `play.${m.format}`; link.hidden = false;
    link.textContent = `download recording (${m.frames} frames, ${(m.bytes / 1024).toFixed(0)} KiB` +
                       `${m.saved ? ", saved as " + m.saved : ""})`;
  }
};
ws.onclose = () => { $("status").textContent = "disconnected (is the server still running?)"; };

// ---------------------------------------------------------------------------------------------- player input

function sendAction() {
  if (!controls || controls.scheme === "none") return;
  if (controls.scheme === "discrete") {
    send({ type: "action", name: held.length ? held[held.length - 1] : null, held: [...held] });
    return;
  }
  const limit = controls.camera.limit;
  const clip = (v) => Math.max(-limit, Math.min(limit, v));
  send({ type: "action", buttons: [...buttons], camera: [clip(camera[0]), clip(camera[1])] });
  camera = [0, 0];
}

function queueFlush() { // mouse moves: at most one message per animation frame
  if (flushQueued) return;
  flushQueued = true;
  requestAnimationFrame(() => { flushQueued = false; sendAction(); });
}

function press(action, down) {
  if (controls.scheme === "discrete") {
    held = held.filter((a) => a !== action);
    if (down) held.push(action);
  } else if (down) buttons.add(action); else buttons.delete(action);
  sendAction();
}

document.addEventListener("keydown", (e) => {
  if (!controls || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const action = keyToAction.get(e.code);
  if (action === undefined) return;
  e.preventDefault();
  if (!e.repeat) press(action, true);
});
document.addEventListener("keyup", (e) => {
  const action = keyToAction.get(e.code);
  if (!controls || action === undefined) return;
  e.preventDefault();
  press(action, false);
});
window.addEventListener("blur", () => { held = []; buttons.clear(); sendAction(); });

const screen = $("imagined");
screen.addEventListener("contextmenu", (e) => e.preventDefault());
screen.addEventListener("mousedown", (e) => {
  if (!controls || controls.scheme !== "minecraft") return;
  if (document.pointerLockElement !== screen) { screen.requestPointerLock(); return; }
  const action = controls.mouse[String(e.button)];
  if (action) press(action, true);
});
document.addEventListener("mouseup", (e) => {
  const action = controls && controls.scheme === "minecraft" ? controls.mouse[String(e.button)] : undefined;
  if (action) press(action, false);
});
document.addEventListener("mousemove", (e) => {
  if (!controls || controls.scheme !== "minecraft" || document.pointerLockElement !== screen) return;
  const unit = controls.camera.degrees_per_unit;
  camera = [camera[0] + e.movementY * unit, camera[1] + e.movementX * unit]; // (pitch, yaw), as VPT's mouse (dy, dx)
  queueFlush();
});

// ---------------------------------------------------------------------------------------------- buttons

$("reset").onclick = () => send({ type: "reset" });
$("pause").onclick = () => send({ type: paused ? "resume" : "pause" });
$("step-once").onclick = () => send({ type: "step" });
$("replay").onclick = () => send({ type: "replay" });
$("record").onclick = () => {
  recording = !recording;
  send(recording ? { type: "record", on: true } : { type: "record", on: false, format: $("format").value });
  $("record").textContent = recording ? "stop recording" : "record";
};
$("go").onclick = () => send({ type: "start", episode: $("episode").value, start: Number($("start").value) || 0 });
