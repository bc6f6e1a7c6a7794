// speakstream web page: streams what you type over the native protocol and plays the
// audio gaplessly through an AudioWorklet. No build step: a plain ES module.

const $ = (id) => document.getElementById(id);
const SAMPLE_TEXT =
  "Sure! Streaming speech starts talking before the whole answer is written. " +
  "Each few words become a segment, synthesized while the next ones arrive, " +
  "so you hear the first words almost at once. Try cancelling me halfway through.";
const JITTER_S = 0.06;

// Exposed for tests and for curious users in the console.
const stats = (window.speakstreamStats = {
  ready: false,
  frames: 0,
  framesAfterCancel: 0,
  ttfaMs: null,
  playedMs: 0,
  underruns: 0,
  cancelled: 0,
  errors: [],
});

let ws = null;
let ready = null;
let audio = null; // AudioContext
let player = null; // AudioWorkletNode
let queuedEnd = 0; // samples ever queued to the player (minus those a cancel discarded)
let played = 0; // samples the player reports as played
let current = null; // the utterance being typed
let lastValue = "";
let counter = 0;
const contexts = new Map(); // context id -> utterance
const byStream = new Map(); // stream number -> utterance
const history = []; // {ttfa, synth} for the chart

function status(text) {
  $("status").textContent = text;
}

function url() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/stream`;
}

// A server with API keys: the page asks for a key, trades it for a short-lived token
// (POST /v1/tokens) and opens the socket with ?token= (a browser cannot set headers).
async function socketUrl() {
  let health = null;
  try {
    health = await (await fetch("/healthz", { cache: "no-store" })).json();
  } catch {
    return url();
  }
  $("auth").hidden = !health.auth_required;
  if (!health.auth_required) return url();
  const key = $("api-key").value.trim();
  if (!key) return null;
  const reply = await fetch("/v1/tokens", { method: "POST", headers: { Authorization: `Bearer ${key}` } });
  if (!reply.ok) return null;
  const { token } = await reply.json();
  return `${url()}?token=${encodeURIComponent(token)}`;
}

async function connect() {
  const target = await socketUrl();
  if (target === null) {
    status("This server needs an API key: enter it above.");
    return; // the key form connects again
  }
  ws = new WebSocket(target);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => (typeof event.data === "string" ? onEvent(JSON.parse(event.data)) : onAudio(event.data));
  ws.onclose = (event) => {
    stats.ready = false;
    setEnabled(false);
    status(`Disconnected (${event.code}${event.reason ? `: ${event.reason}` : ""}); reconnecting…`);
    setTimeout(connect, 1000);
  };
}

function send(message) {
  ws.send(JSON.stringify(message));
}

function setEnabled(on) {
  for (const id of ["text", "llm", "flush", "cancel", "clear"]) $(id).disabled = !on;
}

async function ensureAudio(rate) {
  if (audio && audio.sampleRate === rate) {
    await audio.resume();
    return;
  }
  if (audio) await audio.close();
  audio = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
  await audio.audioWorklet.addModule("/static/player-worklet.js");
  player = new AudioWorkletNode(audio, "stream-player", {
    numberOfInputs: 0,
    outputChannelCount: [1],
    processorOptions: { jitterSamples: Math.round(rate * JITTER_S) },
  });
  player.port.onmessage = (event) => onPlayer(event.data);
  player.connect(audio.destination);
  queuedEnd = 0;
  played = 0;
  await audio.resume();
}

function onPlayer(report) {
  played = report.played;
  stats.underruns = report.underruns;
  $("buffered").textContent = `${Math.round((1000 * report.buffered) / audio.sampleRate)} ms`;
  $("underruns").textContent = String(report.underruns);
  stats.playedMs = (1000 * played) / audio.sampleRate;
  $("played").textContent = `${Math.round(stats.playedMs)} ms`;
}

async function newUtterance() {
  if (current && !current.ended) endUtterance();
  const encoding = $("format").value;
  const voice = ready.capabilities.voices.find((v) => v.name === $("voice").value) || ready.capabilities.voices[0];
  const rate = encoding === "opus_packets" ? 48000 : voice.sample_rate_hz;
  await ensureAudio(rate);
  const utterance = {
    id: `web-${++counter}`,
    encoding,
    rate,
    text: "",
    words: [],
    stream: null,
    firstSentAt: null,
    firstAudioAt: null,
    base: null,
    cancelled: false,
    ended: false,
    decoder: null,
    opusTimestamp: 0,
  };
  if (encoding === "opus_packets") {
    utterance.decoder = new AudioDecoder({
      output: (data) => {
        const samples = new Float32Array(data.numberOfFrames);
        data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
        data.close();
        play(utterance, samples);
      },
      error: (e) => status(`Opus decoder error: ${e.message}`),
    });
    utterance.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });
  }
  contexts.set(utterance.id, utterance);
  current = utterance;
  send({
    type: "start",
    context: utterance.id,
    voice: voice.name,
    encoding,
    sample_rate_hz: rate,
    speed: Number($("speed").value),
    min_text_length: Number($("min-length").value),
    chunk_size: Number($("chunk-size").value),
    alignment: Boolean(ready.capabilities.alignment),
  });
  stats.ttfaMs = null;
  $("ttfa").textContent = "–";
  $("segments").replaceChildren();
  renderSpoken();
  return utterance;
}

async function sendText(text) {
  if (!text) return;
  if (!current || current.ended) await newUtterance();
  const utterance = current;
  if (utterance.firstSentAt === null) utterance.firstSentAt = performance.now();
  utterance.text += text;
  send({ type: "text", context: utterance.id, text });
  renderSpoken();
}

function endUtterance() {
  if (!current || current.ended) return;
  current.ended = true;
  send({ type: "end", context: current.id });
}

function cancel() {
  const utterance = current;
  if (!utterance) return;
  const position = utterance.base === null ? 0 : Math.max(0, played - utterance.base);
  send({ type: "cancel", context: utterance.id, played_ms: (1000 * position) / utterance.rate });
  utterance.cancelled = true;
  utterance.ended = true;
  stats.cancelled += 1;
  if (utterance.decoder && utterance.decoder.state !== "closed") utterance.decoder.close();
  player.port.postMessage({ type: "clear" });
  queuedEnd = played;
  current = null;
  lastValue = $("text").value; // what follows starts a new utterance
  status("Cancelled.");
}

function play(utterance, samples) {
  if (utterance.cancelled) {
    stats.framesAfterCancel += 1;
    return;
  }
  if (utterance.firstAudioAt === null) {
    utterance.firstAudioAt = performance.now();
    utterance.base = queuedEnd;
    const ttfa = utterance.firstAudioAt - utterance.firstSentAt;
    stats.ttfaMs = ttfa;
    $("ttfa").textContent = `${Math.round(ttfa)} ms`;
    history.push({ ttfa, synth: null });
    drawChart();
  }
  queuedEnd += samples.length;
  player.port.postMessage({ type: "audio", samples }, [samples.buffer]);
}

function onAudio(buffer) {
  stats.frames += 1;
  $("frames").textContent = String(stats.frames);
  const view = new DataView(buffer);
  if (view.getUint8(0) !== 0x53 || view.getUint8(1) !== 0x53) return;
  const utterance = byStream.get(view.getUint32(4, true));
  if (!utterance) return;
  if (utterance.cancelled) {
    stats.framesAfterCancel += 1; // in flight when we cancelled: never played
    return;
  }
  const payload = buffer.slice(16);
  if (utterance.encoding === "opus_packets") {
    utterance.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: utterance.opusTimestamp, data: payload }));
    utterance.opusTimestamp += 20000;
    return;
  }
  const pcm = new Int16Array(payload);
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  play(utterance, samples);
}

function onEvent(message) {
  const utterance = message.context ? contexts.get(message.context) : null;
  switch (message.type) {
    case "ready": {
      ready = message;
      const select = $("voice");
      select.replaceChildren(
        ...message.capabilities.voices.map((v) => new Option(`${v.name} (${v.language})`, v.name)),
      );
      if (typeof AudioDecoder === "undefined") $("format").querySelector('[value="opus_packets"]').disabled = true;
      stats.ready = true;
      setEnabled(true);
      status(`Ready: ${message.server}, engine ${message.capabilities.engine}. Start typing.`);
      break;
    }
    case "segment": {
      if (!utterance) break;
      utterance.stream = message.stream;
      byStream.set(message.stream, utterance);
      const item = document.createElement("li");
      const synth = message.first_chunk_ms;
      item.textContent = `#${message.seq} “${message.text.trim()}”${synth !== undefined ? ` — ${Math.round(synth)} ms` : ""}`;
      $("segments").append(item);
      if (synth !== undefined) {
        $("synth").textContent = `${Math.round(synth)} ms`;
        history.push({ ttfa: null, synth });
        drawChart();
      }
      break;
    }
    case "alignment":
      if (utterance) {
        utterance.words.push(...message.words);
        renderSpoken();
      }
      break;
    case "done":
      if (utterance && player) player.port.postMessage({ type: "end" });
      break;
    case "error":
      stats.errors.push(message);
      status(`Error ${message.code}: ${message.message}`);
      break;
    default:
      break;
  }
}

function renderSpoken() {
  const target = $("spoken");
  const utterance = current || [...contexts.values()].pop();
  if (!utterance) {
    target.replaceChildren();
    return;
  }
  const nodes = [];
  let at = 0;
  for (const word of utterance.words) {
    if (word.start > at) nodes.push(document.createTextNode(utterance.text.slice(at, word.start)));
    const span = document.createElement("span");
    span.textContent = utterance.text.slice(word.start, word.end);
    span.dataset.start = word.start_ms;
    span.dataset.end = word.start_ms + word.duration_ms;
    nodes.push(span);
    at = word.end;
  }
  nodes.push(document.createTextNode(utterance.text.slice(at)));
  target.replaceChildren(...nodes);
  target.dataset.context = utterance.id;
}

function highlight() {
  const utterance = contexts.get($("spoken").dataset.context);
  if (!utterance || utterance.base === null || !audio) return;
  const ms = (1000 * (played - utterance.base)) / utterance.rate;
  for (const span of $("spoken").querySelectorAll("span")) {
    const now = Number(span.dataset.start) <= ms && ms < Number(span.dataset.end);
    span.classList.toggle("now", now && !utterance.cancelled);
    span.classList.toggle("done", Number(span.dataset.end) <= ms);
  }
}

function drawChart() {
  const canvas = $("chart");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const recent = history.slice(-60);
  const max = Math.max(50, ...recent.map((h) => h.ttfa ?? h.synth ?? 0));
  const step = canvas.width / 60;
  recent.forEach((h, i) => {
    const value = h.ttfa ?? h.synth;
    const height = (value / max) * (canvas.height - 20);
    g.fillStyle = h.ttfa !== null ? "#2a6df4" : "#9aa4b2";
    g.fillRect(i * step + 1, canvas.height - height, step - 2, height);
  });
  g.fillStyle = "#1b1b1f";
  g.font = "12px system-ui";
  g.fillText(`blue: time to first audio, grey: segment synthesis (max ${Math.round(max)} ms)`, 4, 14);
}

async function streamLikeAnLlm() {
  if (current && !current.ended) endUtterance();
  $("text").value = "";
  lastValue = "";
  await newUtterance();
  const utterance = current;
  const tokens = SAMPLE_TEXT.split(/(?=\s)/);
  for (const token of tokens) {
    if (utterance.cancelled) return;
    await sendText(token);
    await new Promise((resolve) => setTimeout(resolve, 1000 / 30));
  }
  if (current === utterance) endUtterance();
}

$("text").addEventListener("input", async () => {
  const value = $("text").value;
  if (value.startsWith(lastValue)) {
    const added = value.slice(lastValue.length);
    lastValue = value;
    await sendText(added);
  } else {
    // An edit, not an append: what was said cannot be unsaid; speak the new text afresh.
    if (current && !current.ended) cancel();
    lastValue = value;
    await newUtterance();
    await sendText(value);
  }
});
$("flush").addEventListener("click", () => current && send({ type: "flush", context: current.id }));
$("cancel").addEventListener("click", cancel);
$("clear").addEventListener("click", () => {
  endUtterance();
  $("text").value = "";
  lastValue = "";
  $("text").focus();
});
$("llm").addEventListener("click", streamLikeAnLlm);
$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!ws || ws.readyState === WebSocket.CLOSED) connect();
});
setInterval(highlight, 50);
drawChart();
connect();
