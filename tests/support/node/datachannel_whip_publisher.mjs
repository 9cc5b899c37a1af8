// A WHIP publisher on libdatachannel (through node-datachannel): the WebRTC library OBS Studio
// uses for WHIP. It sends an already-encoded scene (tests/support/encoded_scene.py: H.264 + Opus)
// paced in real time, with libdatachannel's own H.264 packetizer, RTCP Sender Reports and NACK
// responder, as OBS does. One JSON line per milestone on stdout; exit 0 once connected, sent and
// DELETEd.
//
//   node tests/support/node/datachannel_whip_publisher.mjs URL scene.bin [--seconds 10]

import { readFileSync } from "node:fs";
import nodeDataChannel from "node-datachannel";

const {
  PeerConnection, Video, Audio, RtpPacketizationConfig, H264RtpPacketizer, RtpPacketizer,
  RtcpSrReporter, RtcpNackResponder,
} = nodeDataChannel;

const [url, scenePath, ...rest] = process.argv.slice(2);
const seconds = rest[0] === "--seconds" ? Number(rest[1]) : 10;
const say = (event, fields = {}) => console.log(JSON.stringify({ event, t: Date.now() / 1000, ...fields }));

function readScene(path) {
  const data = readFileSync(path);
  const frames = [];
  for (let at = 0; at < data.length;) {
    const kind = String.fromCharCode(data[at]);
    const time = data.readDoubleLE(at + 1);
    const size = data.readUInt32LE(at + 9);
    frames.push({ kind, time, payload: data.subarray(at + 13, at + 13 + size) });
    at += 13 + size;
  }
  return frames.sort((a, b) => a.time - b.time);
}

function sendingTrack(pc, media, ssrc, payloadType, clockRate, packetizer) {
  const track = pc.addTrack(media);
  const config = new RtpPacketizationConfig(ssrc, "scenestream-test", payloadType, clockRate);
  const handler = packetizer(config);
  handler.addToChain(new RtcpSrReporter(config));
  handler.addToChain(new RtcpNackResponder());
  track.setMediaHandler(handler);
  return { track, config, base: config.timestamp };
}

const frames = readScene(scenePath);
const pc = new PeerConnection("scenestream-test", { iceServers: [] });
const video = new Video("video", "SendOnly");
video.addH264Codec(96);
video.addSSRC(1111, "scenestream-test", "scene", "video");
const audio = new Audio("audio", "SendOnly");
audio.addOpusCodec(111);
audio.addSSRC(2222, "scenestream-test", "scene", "audio");
const tracks = {
  v: sendingTrack(pc, video, 1111, 96, 90000, (c) => new H264RtpPacketizer("StartSequence", c)),
  a: sendingTrack(pc, audio, 2222, 111, 48000, (c) => new RtpPacketizer(c)),
};

let location = null;
let finished = false;

async function finish(code, why) {
  if (finished) return;
  finished = true;
  if (why) say("failed", { reason: why });
  if (location) {
    try {
      const response = await fetch(location, { method: "DELETE" });
      say("deleted", { status: response.status });
    } catch (error) {
      say("delete failed", { reason: String(error) });
    }
  }
  pc.close();
  say("done", { code });
  setTimeout(() => process.exit(code), 100);
}

function send() {
  const start = performance.now();
  let next = 0;
  let sent = 0;
  const pump = () => {
    const now = (performance.now() - start) / 1000;
    while (next < frames.length && frames[next].time <= now) {
      const frame = frames[next++];
      const { track, config, base } = tracks[frame.kind];
      config.timestamp = (base + Math.round(frame.time * config.clockRate)) >>> 0;
      if (track.isOpen()) {
        track.sendMessageBinary(frame.payload);
        sent++;
      }
    }
    if (next >= frames.length || now >= seconds) {
      say("sent", { frames: sent });
      finish(0);
    } else {
      setTimeout(pump, 5);
    }
  };
  pump();
}

pc.onStateChange((state) => {
  say("connection", { state });
  if (state === "connected") send();
  if (state === "failed") finish(1, "connection failed");
});
pc.onGatheringStateChange(async (state) => {
  if (state !== "complete") return;
  const offer = pc.localDescription().sdp;
  say("offer", { sdp: offer });
  try {
    const response = await fetch(url, {
      method: "POST", body: offer, headers: { "Content-Type": "application/sdp" },
    });
    const answer = await response.text();
    if (response.status !== 201) return finish(1, `POST answered ${response.status}: ${answer}`);
    location = new URL(response.headers.get("Location"), url).toString();
    say("answer", { status: response.status, location, sdp: answer });
    pc.setRemoteDescription(answer, "answer");
  } catch (error) {
    finish(1, `POST failed: ${error}`);
  }
});
pc.setLocalDescription();
setTimeout(() => finish(1, "not finished in time"), (seconds + 30) * 1000);
