// What both vsa pages share: the token, calls to their server, the state line and the message line, and
// waiting for ICE candidates. Each page's own script sets `pageStatus` (the object tests read) before using them.
"use strict";

// The token travels in the URL's fragment, which browsers never send to a server; every call presents it.
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const headers = token ? { "X-Vsa-Token": token, "Content-Type": "application/json" } : { "Content-Type": "application/json" };
const $ = (id) => document.getElementById(id);
let pageStatus = { state: "", error: "" };

function setState(text, cls) {
  pageStatus.state = text;
  $("state").textContent = text;
  $("state").className = "state " + (cls || "");
}

function say(message) {
  pageStatus.error = message;
  $("message").textContent = message;
}

async function call(path, body) {
  const response = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  const reply = await response.json();
  if (!response.ok) throw new Error(reply.error || response.statusText);
  return reply;
}

function gathered(connection, ms) {
  // aiortc answers with every candidate; the offer may go once ours are gathered (or after a bound wait).
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    connection.addEventListener("icegatheringstatechange", () => { if (connection.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, ms);
  });
}
