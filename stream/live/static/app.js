// scenestream live page: publish a camera + microphone over WHIP, watch the stream's scene,
// events and latency arrive over Server-Sent Events (/api/live), and list every live stream
// (/api/streams). Detector engines' latest detections and tracks are drawn over the video.
// Plain browser JavaScript, no build step; current Chromium and Firefox.
"use strict";

const MAX_TIMELINE = 200; // rows kept in the event timeline
const LIVE_OPEN_MS = 3000; // longest wait for the live feed before offering
const LATENCY_SAMPLES = 200; // scene messages kept for the p50/p95 figures
const STREAMS_POLL_MS = 2000;
const ICE_GATHER_MS = 2000; // the server does not trickle, so neither do we: wait, then offer

const $ = (id) => document.getElementById(id);

const state = {
  pc: null, // RTCPeerConnection while publishing
  media: null, // MediaStream of the camera + microphone
  sessionUrl: null, // WHIP session URL (from Location), DELETEd on stop
  token: "",
  live: null, // EventSource of the watched stream
  watched: null,
  latency: { capture_to_publish: [], queue: [], infer: [], page: [] },
  scenes: 0,
  objects: new Map(), // detector engine -> its latest { detections, tracks } (watched stream)
  boxesDrawn: 0,
};

// ---- pure helpers -----------------------------------------------------------------------

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx];
}

function fmt(value, digits = 1) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : Number(value).toFixed(digits);
}

function clockTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "…";
  const d = new Date(unixSeconds * 1000);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function sum(obj) {
  if (typeof obj === "number") return obj;
  if (!obj || typeof obj !== "object") return 0;
  return Object.values(obj).reduce((a, v) => a + (typeof v === "number" ? v : 0), 0);
}

function classColour(name) {
  // A stable colour per class name (the same class keeps its colour across frames).
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h}, 90%, 60%)`;
}

function contentRect(video, width, height) {
  // Where the video's picture lies inside the element (object-fit: contain); the whole box
  // when no picture is playing (another publisher's stream: boxes over black).
  const vw = video.videoWidth, vh = video.videoHeight;
  if (!vw || !vh) return { x: 0, y: 0, w: width, h: height };
  const scale = Math.min(width / vw, height / vh);
  const w = vw * scale, h = vh * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, w, h };
}

function objectsToDraw(objects) {
  // Tracks (with their ids) first; a detection is drawn on its own only when no track of its
  // class covers it (its track already shows the object).
  const out = [];
  for (const [engine, { detections, tracks }] of objects) {
    for (const t of tracks) out.push({ engine, box: t.box, cls: t.class, score: t.score,
      track: t.id, lost: t.state === "lost" });
    for (const d of detections) {
      const covered = tracks.some((t) => t.class === d.class && t.state !== "lost" && iou(t.box, d.box) > 0.5);
      if (!covered) out.push({ engine, box: d.box, cls: d.class, score: d.score, track: null, lost: false });
    }
  }
  return out;
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

async function problemText(resp) {
  // RFC 9457 problem details when the server sends them, else the status line.
  try {
    const body = await resp.json();
    return body.detail || body.title || `${resp.status} ${resp.statusText}`;
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

// ---- devices ----------------------------------------------------------------------------

async function listDevices(askPermission) {
  if (!navigator.mediaDevices) {
    showError("This page needs a secure context (https or localhost) for camera access.");
    return;
  }
  if (askPermission) {
    // Labels stay empty until the user has granted access once (Firefox and Chromium alike).
    const probe = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    probe.getTracks().forEach((t) => t.stop());
  }
  const devices = await navigator.mediaDevices.enumerateDevices();
  fillSelect($("camera"), devices.filter((d) => d.kind === "videoinput"));
  fillSelect($("microphone"), devices.filter((d) => d.kind === "audioinput"));
}

function fillSelect(select, devices) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "" }, "default"));
  devices.forEach((d, i) => {
    if (!d.deviceId) return;
    select.append(el("option", { value: d.deviceId }, d.label || `${d.kind} ${i + 1}`));
  });
  select.value = [...select.options].some((o) => o.value === keep) ? keep : "";
}

// ---- publishing (WHIP, RFC 9725) --------------------------------------------------------

function setConn(text, kind) {
  const badge = $("conn");
  badge.textContent = text;
  badge.className = "badge " + kind;
  badge.dataset.state = kind;
}

function showError(text) {
  const p = $("publish-error");
  p.textContent = text;
  p.hidden = !text;
}

function waitForIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHER_MS); // host candidates are enough on a LAN
  });
}

async function publish(event) {
  event.preventDefault();
  showError("");
  const streamId = $("stream-id").value.trim();
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  state.token = $("token").value.trim();
  $("start").disabled = true;
  setConn("starting camera…", "pending");
  try {
    state.media = await navigator.mediaDevices.getUserMedia({
      video: { deviceId: camera ? { exact: camera } : undefined, width: { ideal: 640 },
        height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: { deviceId: microphone ? { exact: microphone } : undefined },
    });
    $("preview").srcObject = state.media;
    const pc = new RTCPeerConnection({ iceServers: [] });
    state.pc = pc;
    for (const track of state.media.getTracks()) {
      pc.addTransceiver(track, { direction: "sendonly", streams: [state.media] });
    }
    pc.addEventListener("connectionstatechange", () => onConnectionState(pc));
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc);
    setConn("offering…", "pending");
    // Subscribed before the offer: the service announces `online` once, when ICE connects.
    await watch(streamId);
    const headers = { "Content-Type": "application/sdp" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    // fetch follows a 307 to a worker with room, keeping the method and the body.
    const resp = await fetch(`/whip/${encodeURIComponent(streamId)}`, {
      method: "POST", headers, body: pc.localDescription.sdp,
    });
    if (resp.status !== 201) {
      const retry = resp.headers.get("Retry-After");
      throw new Error((await problemText(resp)) + (retry ? ` (retry in ${retry} s)` : ""));
    }
    const location = resp.headers.get("Location");
    state.sessionUrl = location ? new URL(location, resp.url).href : null;
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    $("stop").disabled = false;
  } catch (err) {
    showError(`Could not publish: ${err.message || err}`);
    await teardown(false);
  }
}

function onConnectionState(pc) {
  if (pc !== state.pc) return;
  const s = pc.connectionState;
  if (s === "connected") setConn("connected", "ok");
  else if (s === "failed") {
    setConn("connection failed", "bad");
    teardown(true);
  } else if (s === "disconnected") setConn("reconnecting…", "pending");
  else if (s !== "closed") setConn(s, "pending");
}

async function teardown(deleteSession) {
  const url = state.sessionUrl;
  state.sessionUrl = null;
  if (deleteSession && url) {
    const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    try {
      await fetch(url, { method: "DELETE", headers });
    } catch (err) {
      console.warn("WHIP DELETE failed", err);
    }
  }
  if (state.pc) state.pc.close();
  state.pc = null;
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  state.media = null;
  $("preview").srcObject = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  if ($("conn").dataset.state !== "bad") setConn("not publishing", "idle");
}

// ---- live view (SSE) --------------------------------------------------------------------

function watch(streamId) {
  if (state.live) state.live.close();
  state.watched = streamId;
  state.scenes = 0;
  state.objects.clear();
  state.boxesDrawn = 0;
  drawBoxes();
  Object.values(state.latency).forEach((a) => (a.length = 0));
  $("watching").textContent = streamId;
  delete $("scene").dataset.live;
  $("watch-id").value = streamId;
  $("scores").replaceChildren();
  $("active").replaceChildren();
  $("timeline").replaceChildren();
  $("stream-state").textContent = "waiting…";
  $("stream-reason").textContent = "";
  $("scene-count").textContent = "0";
  $("scene-dropped").textContent = "0";
  const token = $("token").value.trim(); // EventSource cannot send headers: query parameter
  const query = new URLSearchParams({ stream: streamId });
  if (token) query.set("token", token);
  const source = new EventSource(`/api/live?${query}`);
  state.live = source;
  source.addEventListener("scene", (e) => onScene(JSON.parse(e.data)));
  source.addEventListener("event", (e) => onEvent(JSON.parse(e.data)));
  source.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  source.addEventListener("lag", (e) => {
    $("scene-dropped").textContent = JSON.parse(e.data).dropped_scenes;
  });
  source.addEventListener("error", () => {
    if (source === state.live) $("stream-reason").textContent = "(live feed reconnecting…)";
  });
  source.addEventListener("open", () => {
    if (source !== state.live) return;
    $("stream-reason").textContent = "";
    $("scene").dataset.live = "open";
  });
  // Resolves once the server has subscribed (it sends the headers after SUBSCRIBE), or after
  // LIVE_OPEN_MS: publishing never waits long on the live view.
  return new Promise((resolve) => {
    source.addEventListener("open", resolve, { once: true });
    setTimeout(resolve, LIVE_OPEN_MS);
  });
}

function onScene(msg) {
  state.scenes += 1;
  $("scene-count").textContent = state.scenes;
  renderScores(msg.scores || {}, new Set(msg.active || []));
  if (Array.isArray(msg.detections) || Array.isArray(msg.tracks)) {
    state.objects.set(msg.engine, { detections: msg.detections || [], tracks: msg.tracks || [] });
    drawBoxes();
  }
  const active = (msg.active || []).map((label) => el("span", { class: "chip" }, label));
  $("active").replaceChildren(...active);
  const lat = { ...(msg.latency_ms || {}) };
  if (msg.window && typeof msg.window.end === "number") {
    lat.page = Date.now() - msg.window.end * 1000; // same clock only when on the same host
  }
  for (const [key, samples] of Object.entries(state.latency)) {
    if (typeof lat[key] !== "number") continue;
    samples.push(lat[key]);
    if (samples.length > LATENCY_SAMPLES) samples.shift();
    const row = document.querySelector(`#latency tr[data-key="${key}"]`);
    const cells = row.querySelectorAll("td");
    cells[0].textContent = fmt(lat[key]);
    cells[1].textContent = fmt(percentile(samples, 0.5));
    cells[2].textContent = fmt(percentile(samples, 0.95));
  }
}

function drawBoxes() {
  const canvas = $("boxes");
  const video = $("preview");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const r = contentRect(video, width, height);
  const items = objectsToDraw(state.objects);
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  for (const o of items) {
    const [x1, y1, x2, y2] = o.box;
    const x = r.x + x1 * r.w, y = r.y + y1 * r.h, w = (x2 - x1) * r.w, h = (y2 - y1) * r.h;
    const colour = classColour(o.cls);
    ctx.strokeStyle = colour;
    ctx.lineWidth = o.track === null ? 1 : 2;
    ctx.setLineDash(o.lost ? [4, 3] : []);
    ctx.strokeRect(x, y, w, h);
    const text = `${o.track === null ? "" : `#${o.track} `}${o.cls} ${fmt(o.score, 2)}`;
    const tw = ctx.measureText(text).width + 6;
    const ty = y >= 16 ? y : y + 16;
    ctx.fillStyle = colour;
    ctx.fillRect(x, ty - 15, tw, 15);
    ctx.fillStyle = "#111";
    ctx.fillText(text, x + 3, ty - 1);
  }
  state.boxesDrawn += items.length;
  canvas.dataset.count = String(items.length);
  canvas.dataset.drawn = String(state.boxesDrawn);
  $("objects").replaceChildren(...items.map((o) => el("li", {
    class: o.lost ? "lost" : "", "data-engine": o.engine, "data-class": o.cls,
    "data-track": o.track === null ? "" : String(o.track), style: `--box: ${classColour(o.cls)}`,
  }, `${o.track === null ? "" : `#${o.track} `}${o.cls} ${fmt(o.score, 2)}`)));
}

function renderScores(scores, active) {
  const box = $("scores");
  for (const [label, score] of Object.entries(scores).sort()) {
    let row = box.querySelector(`[data-label="${CSS.escape(label)}"]`);
    if (!row) {
      row = el("div", { class: "score", "data-label": label },
        el("span", { class: "name" }, label), el("span", { class: "bar" }, el("span")),
        el("span", { class: "value" }));
      box.append(row);
    }
    row.classList.toggle("on", active.has(label));
    row.querySelector(".bar > span").style.width = `${Math.round(score * 100)}%`;
    row.querySelector(".value").textContent = fmt(score, 2);
  }
}

function onEvent(msg) {
  const item = el("li", { class: `phase-${msg.phase}`, "data-id": msg.id, "data-label": msg.label,
    "data-phase": msg.phase },
  el("span", { class: "phase" }, msg.phase),
  el("strong", {}, msg.label),
  el("span", { class: "sub" }, ` score ${fmt(msg.score, 2)} · peak ${fmt(msg.peak_score, 2)} · `
    + `${clockTime(msg.start)} → ${msg.end === null ? "…" : clockTime(msg.end)}`));
  const list = $("timeline");
  list.prepend(item);
  while (list.children.length > MAX_TIMELINE) list.lastElementChild.remove();
}

function onStatus(msg) {
  $("stream-state").textContent = msg.state;
  if (msg.state === "offline" && msg.stream === state.watched && state.objects.size) {
    state.objects.clear(); // no picture, no objects
    drawBoxes();
  }
  $("stream-state").dataset.state = msg.state;
  $("stream-reason").textContent = msg.reason ? `(${msg.reason})` : "";
}

// ---- operator view ----------------------------------------------------------------------

async function pollStreams() {
  try {
    const token = $("token").value.trim();
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const resp = await fetch("/api/streams", { cache: "no-store", headers });
    if (!resp.ok) throw new Error(await problemText(resp));
    const body = await resp.json();
    renderStreams(Array.isArray(body) ? body : body.streams || []);
    $("streams-error").hidden = true;
    $("streams-updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
  } catch (err) {
    $("streams-error").textContent = `Could not list streams: ${err.message || err}`;
    $("streams-error").hidden = false;
  } finally {
    setTimeout(pollStreams, STREAMS_POLL_MS);
  }
}

function renderStreams(rows) {
  const body = $("streams").querySelector("tbody");
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 9, class: "sub" }, "no live streams")));
    return;
  }
  body.replaceChildren(...rows.map((r) => {
    const id = r.stream || r.id || "?";
    const rx = r.frames_received || {};
    const button = el("button", { type: "button" }, "watch");
    button.addEventListener("click", () => watch(id));
    return el("tr", { "data-stream": id },
      el("td", {}, id), el("td", {}, r.state || "—"), el("td", {}, fmt(r.fps)),
      el("td", {}, `${rx.video ?? "—"} / ${rx.audio ?? "—"}`),
      el("td", { title: JSON.stringify(r.frames_dropped ?? r.drops ?? {}) }, String(sum(r.frames_dropped ?? r.drops))),
      el("td", {}, String(r.windows ?? "—")),
      el("td", {}, fmt(r.last_window_latency_ms ?? r.latency_ms)),
      el("td", {}, r.uptime_s === undefined ? "—" : `${Math.round(r.uptime_s)} s`),
      el("td", {}, button));
  }));
}

// ---- wiring -----------------------------------------------------------------------------

function init() {
  const params = new URLSearchParams(location.search);
  $("stream-id").value = params.get("stream") || `cam-${Math.random().toString(36).slice(2, 8)}`;
  $("publish-form").addEventListener("submit", publish);
  $("stop").addEventListener("click", () => teardown(true));
  $("devices").addEventListener("click", () => listDevices(true).catch((e) => showError(e.message)));
  $("watch-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("watch-id").value.trim();
    if (id) watch(id);
  });
  window.addEventListener("pagehide", () => teardown(true));
  window.addEventListener("resize", drawBoxes);
  $("preview").addEventListener("resize", drawBoxes); // the picture's size became known
  $("preview").addEventListener("emptied", drawBoxes);
  listDevices(false).catch((e) => showError(e.message));
  if (params.get("watch")) watch(params.get("watch"));
  pollStreams();
}

document.addEventListener("DOMContentLoaded", init);
