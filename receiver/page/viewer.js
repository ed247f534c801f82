// The vrecv viewer: one WebRTC connection that receives the reconstructed video (and, when asked, its
// bicubic twin), the stream's figures from /stats, and what this leg adds to latency from /timing.
"use strict";

// What tests and the curious read: frames shown, and (RTP timestamp, wall clock) of each.
const viewer = (window.vsaViewer = { framesShown: 0, samples: [], pageLatencies: [], state: "connecting", error: "" });
let pc = null;
let viewerId = null; // what vrecv calls this page's connection, to say it leaves
let streaming = false;
pageStatus = viewer;

function leave() {
  if (viewerId) fetch("leave", { method: "POST", headers, body: JSON.stringify({ id: viewerId }), keepalive: true }).catch(() => {});
  viewerId = null;
  if (pc) pc.close();
}

async function connect() {
  leave();
  const compare = $("compare").checked;
  $("bicubic-view").hidden = !compare;
  const views = compare ? [$("vsa"), $("bicubic")] : [$("vsa")];
  pc = new RTCPeerConnection({ iceServers: [] });
  const mine = pc;
  const transceivers = views.map(() => pc.addTransceiver("video", { direction: "recvonly" }));
  // Ask for the shortest jitter buffer: on the paths vrecv serves, added delay is what a viewer notices.
  transceivers.forEach((t) => { if ("jitterBufferTarget" in t.receiver) t.receiver.jitterBufferTarget = 0; });
  pc.ontrack = (event) => {
    const i = transceivers.indexOf(event.transceiver);
    if (i >= 0) views[i].srcObject = new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (mine !== pc) return;
    if (pc.connectionState === "connected") setState(streaming ? "live" : "waiting for a sender", streaming ? "live" : "");
    if (pc.connectionState === "failed" || pc.connectionState === "disconnected") {
      setState("reconnecting…", "bad");
      setTimeout(() => { if (mine === pc) connect().catch(fail); }, 2000);
    }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 2000);
  const answer = await call("offer", { sdp: pc.localDescription.sdp, type: "offer", bicubic: compare });
  viewerId = answer.id;
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  say("");
}

function fail(error) {
  setState("not connected", "bad");
  say(String(error.message || error));
}

// -- frames shown, and their timestamps ---------------------------------------------------------
function watchFrames(video) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const onFrame = (now, meta) => {
    viewer.framesShown += 1;
    if (meta.rtpTimestamp !== undefined) {
      viewer.samples.push([meta.rtpTimestamp, performance.timeOrigin + meta.expectedDisplayTime]);
      if (viewer.samples.length > 300) viewer.samples.shift();
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

// RTP timestamps are vrecv's publication times (90 kHz) plus an offset aiortc draws at random per connection.
// The offset is found by matching: the one that puts most of our timestamps on vrecv's own. Chromium reports
// about half of them one tick off (its own 90 kHz round trip), so a match allows a tick either way.
const WRAP = 2 ** 32;
function near(map, key) {
  for (const k of [key, (key + 1) % WRAP, (key - 1 + WRAP) % WRAP]) if (map.has(k)) return map.get(k);
  return undefined;
}
function matchOrigin(frames) {
  if (!viewer.samples.length || !frames.length) return null;
  const wall = new Map(frames.map(([pts, ms]) => [pts, ms]));
  let best = null, bestHits = 0;
  const [first] = viewer.samples[viewer.samples.length - 1];
  for (const [pts] of frames) {
    const origin = (first - pts + WRAP) % WRAP;
    let hits = 0;
    for (const [rtp] of viewer.samples) if (near(wall, (rtp - origin + WRAP) % WRAP) !== undefined) hits += 1;
    if (hits > bestHits) { best = origin; bestHits = hits; }
  }
  return best !== null && bestHits >= Math.min(10, viewer.samples.length) ? best : null;
}

function pageLatencies(frames, origin) {
  const wall = new Map(frames.map(([pts, ms]) => [pts, ms]));
  const out = [];
  for (const [rtp, shownAt] of viewer.samples) {
    const sent = near(wall, (rtp - origin + WRAP) % WRAP);
    if (sent !== undefined) out.push(shownAt - sent);
  }
  return out;
}

// The next frame shown, as a PNG, with vrecv's output index for it (for tests that compare pictures).
viewer.grab = () => new Promise((resolve, reject) => {
  const video = $("vsa");
  video.requestVideoFrameCallback(async (now, meta) => {
    try {
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      const { frames } = await call("timing");
      const origin = matchOrigin(frames);
      const index = new Map(frames.map(([pts, , i]) => [pts, i]));
      const hit = origin === null ? undefined : near(index, (meta.rtpTimestamp - origin + WRAP) % WRAP);
      resolve({ png: canvas.toDataURL("image/png"), index: hit === undefined ? null : hit });
    } catch (error) {
      reject(error);
    }
  });
});

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };

// -- figures ------------------------------------------------------------------------------------
const show = (id, text) => { $(id).textContent = text; };
async function poll() {
  try {
    const s = await call("stats");
    streaming = s.streaming;
    if (pc && pc.connectionState === "connected") setState(streaming ? "live" : "waiting for a sender", streaming ? "live" : "");
    if (s.media_kbps !== undefined) {
      show("media_kbps", `${s.media_kbps.toFixed(1)} kbps`);
      show("fps", `${s.fps.toFixed(1)} fps`);
      show("latency_ms", `${Math.round(s.latency_ms)} ms`);
      show("lost", String(s.lost));
      show("model_version", `v${s.model_version}`);
      show("iterations", String(s.iterations));
    }
    if (s.size) show("size", `${s.size[1]}×${s.size[0]}`);
    show("viewers", String(s.viewers));
    const t = await call("timing");
    const origin = matchOrigin(t.frames);
    viewer.pageLatencies = origin === null ? [] : pageLatencies(t.frames, origin);
    if (viewer.pageLatencies.length) show("page_ms", `${Math.round(median(viewer.pageLatencies))} ms`);
  } catch (error) {
    say(String(error.message || error));
  }
}

$("compare").addEventListener("change", () => connect().catch(fail));
window.addEventListener("pagehide", leave);
watchFrames($("vsa"));
connect().catch(fail);
poll();
setInterval(poll, 1000);
