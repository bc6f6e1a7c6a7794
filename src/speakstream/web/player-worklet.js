// Gapless playback: queued sample blocks, a small jitter buffer before (re)starting, and a
// report of what has been played (the playback clock) and of underruns (gaps in speech).
class StreamPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.queue = [];
    this.offset = 0;
    this.buffered = 0;
    this.played = 0;
    this.underruns = 0;
    this.playing = false;
    this.starved = false; // ran dry while playing: more audio now means a gap was heard
    this.waited = 0; // samples of time spent holding audio back for the jitter buffer
    this.jitter = options.processorOptions.jitterSamples;
    this.frame = 0;
    this.port.onmessage = (event) => {
      const msg = event.data;
      if (msg.type === "audio") {
        if (this.starved) {
          this.underruns += 1;
          this.starved = false;
        }
        this.queue.push(msg.samples);
        this.buffered += msg.samples.length;
      } else if (msg.type === "clear") {
        this.queue = [];
        this.offset = 0;
        this.buffered = 0;
        this.playing = false;
        this.starved = false;
      } else if (msg.type === "end") {
        this.starved = false; // the utterance is over: running dry now is no underrun
      }
    };
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    let written = 0;
    if (!this.playing && this.buffered > 0) {
      this.waited += out.length;
      if (this.buffered >= this.jitter || this.waited >= this.jitter) {
        this.playing = true;
        this.waited = 0;
      }
    }
    if (this.playing) {
      while (written < out.length && this.queue.length) {
        const block = this.queue[0];
        const n = Math.min(out.length - written, block.length - this.offset);
        out.set(block.subarray(this.offset, this.offset + n), written);
        written += n;
        this.offset += n;
        if (this.offset === block.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
      this.buffered -= written;
      this.played += written;
      if (this.buffered === 0) {
        this.playing = false;
        this.starved = true;
      }
    }
    out.fill(0, written);
    if (++this.frame % 4 === 0) {
      this.port.postMessage({ buffered: this.buffered, played: this.played, underruns: this.underruns });
    }
    return true;
  }
}

registerProcessor("stream-player", StreamPlayer);
