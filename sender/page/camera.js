// The vsend camera page: asks for the camera, sends it to vsend as a WebRTC video track, and shows what vsend
// makes of it (/stats, and the low-res frame from /lowres).
"use strict";

const page = (window.vsaCamera = { state: "starting", error: "", lowresShown: 0 });
pageStatus = page;

async function start() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30, max: 30 } }, audio: false });
  } catch (error) {
    const why = `${error.name}: ${error.message}`;
    setState("no camera", "bad");
    say(`The browser did not give this page the camera (${why}). Allow the camera for this site, then reload.`);
    call("status", { error: why }).catch(() => {});
    return;
  }
  const track = stream.getVideoTracks()[0];
  $("camera").srcObject = stream;
  const settings = track.getSettings();
  const pc = new RTCPeerConnection({ iceServers: [] });
  const sender = pc.addTrack(track, stream);
  // vsa downsamples what it receives: ask the browser for a high-quality copy on this (usually local) leg.
  const params = sender.getParameters();
  if (params.encodings && params.encodings.length) {
    params.encodings[0].maxBitrate = 4_000_000;
    sender.setParameters(params).catch(() => {});
  }
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") setState("camera sent to vsend", "live");
    if (pc.connectionState === "failed" || pc.connectionState === "closed") setState("vsend has stopped", "bad");
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 2000);
  const answer = await call("offer", {
    sdp: pc.localDescription.sdp, type: "offer", width: settings.width, height: settings.height,
    frameRate: settings.frameRate, label: track.label,
  });
  await pc.setRemoteDescription(answer);
}

// -- what vsend makes of it ---------------------------------------------------------------------
const show = (id, text) => { $(id).textContent = text; };
async function poll() {
  try {
    const s = await call("stats");
    if (s.sent_kbps !== undefined) show("sent_kbps", `${s.sent_kbps.toFixed(1)} kbps`);
    if (s.target_kbps) show("target_kbps", `${Number(s.target_kbps).toFixed(0)} kbps`);
    else if (s.frames !== undefined) show("target_kbps", "none");
    if (s.frames !== undefined) {
      show("frames", String(s.frames));
      show("frames_sent", String(s.frames_sent));
      show("point", `${s.scale}, ${s.stride}`);
      show("codec", String(s.codec));
      if (s.size && s.size.length) show("size", `${s.size[1]}×${s.size[0]}`);
      show("model", s.model_sent ? "sent" : "at receiver");
    }
    if (s.receiver && s.receiver.latency_ms !== undefined) show("latency", `${Math.round(s.receiver.latency_ms)} ms`);
    if (s.frames !== undefined && page.state === "camera sent to vsend") setState("streaming", "live");
    const low = await call("lowres");
    if (low.png) {
      const image = new Image();
      image.onload = () => {
        const canvas = $("lowres");
        canvas.width = image.width;
        canvas.height = image.height;
        canvas.getContext("2d").drawImage(image, 0, 0);
        page.lowresShown += 1;
        show("lowres-caption", `the low-res frame vsa sends: ${image.width}×${image.height}, enlarged`);
      };
      image.src = low.png;
    }
  } catch (error) {
    if (page.state === "streaming") setState("vsend has stopped", "bad");
  }
}

start().catch((error) => { setState("not connected", "bad"); say(String(error.message || error)); });
setInterval(poll, 1000);
