// The runtime's main thread. It routes framed messages between the Python host
// (two pipes of its own, see below) and the Pyodide worker, owns the deadlines and the interrupt,
// and replaces the worker when it has to be killed.
//
// Messages from the worker are untrusted (guest code can post anything through
// `js.postMessage`): each is checked before anything acts on it.

import { createChannel, DEAD, DOWN, DOWN_LEN, put, REPLY, REPLY_DATA, REPLY_HEAD, UP, UP_DATA, UP_HEAD } from "./channel.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);
const sendBuf = new Uint8Array(1 << 16); // see `send`
const sendView = new DataView(sendBuf.buffer);
let reading = false; // an async read of stdin is under way (see `nextFrame`)
// The host alone decides when the runtime ends (it closes stdin, or kills it):
// a Ctrl-C or SIGTERM sent to the host's process group (a worker told to stop
// gracefully) must not kill the runtime under the step in flight.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) Deno.addSignalListener(signal, () => {});
// The host's pipes: frames come on file descriptor Deno.args[0] and go out on
// Deno.args[1], not on stdin and stdout (which are /dev/null). Guest code can
// reach fds 0 and 1 (Deno.stdin, node:fs, Deno's core ops on resource 0), and
// a read it left running there would take the host's next frame. These two
// are opened here, by a path only this thread may open (the worker's
// permissions name no /proc path); their resources are this isolate's, which
// no other isolate can name.
const [hostIn, hostOut] = (() => {
  const [down, up] = Deno.args.map((a) => Number(a));
  if (!Number.isInteger(down) || !Number.isInteger(up)) Deno.exit(2);
  return [Deno.openSync(`/proc/self/fd/${down}`, { read: true }), Deno.openSync(`/proc/self/fd/${up}`, { write: true })];
})();
// The host's frames; the first is the configuration (never argv, which every
// user of the machine can read in /proc).
const stdin = hostFrames();
const config = (await nextFrame())?.[0];
if (config?.t !== "config" || !/^[0-9a-f]{32}$/.test(config.key)) Deno.exit(2);
// Every frame to the host starts with this key, drawn by the host: should
// anything but this thread ever write to the host's pipe, the host checks the
// key before it reads a frame, and drops the runtime when it is wrong. The key
// never leaves this thread except on that pipe, which nothing in the process
// can read back.
const KEY = Uint8Array.from(config.key.match(/../g), (h) => parseInt(h, 16));
// The largest frame the host takes (Limits.frame_bytes); keep well under it.
const FRAME_BYTES = config.frameBytes;
// A host call's arguments, in characters: a string field JSON-escapes to at
// most 6 bytes a character, and the call's data (in parts of 4 MiB at most
// from the guest's `call`) must fit in the same frame.
const MAX_FIELD = FRAME_BYTES >> 4;
const WORKER_PERMISSIONS = {
  read: config.read,
  write: false,
  net: false,
  env: false,
  run: false,
  ffi: false,
  sys: false,
  import: false,
};

// --- framing over stdio ------------------------------------------------------

function writeAll(buf) {
  let off = 0;
  while (off < buf.length) off += hostOut.writeSync(buf.subarray(off));
}

// A frame: the key (16 bytes), header length, payload length (u32 LE each),
// the JSON header, the payload. Frames of the usual size are put together in
// one buffer kept for the purpose and go out in one write: a host call costs
// no allocation and one syscall here.

function send(header, payload) {
  const text = JSON.stringify(header);
  const data = payload ?? EMPTY;
  if (24 + text.length * 3 + data.length <= sendBuf.length) { // UTF-8: at most 3 bytes a UTF-16 unit
    sendBuf.set(KEY, 0);
    const { written } = encoder.encodeInto(text, sendBuf.subarray(24));
    sendView.setUint32(16, written, true);
    sendView.setUint32(20, data.length, true);
    sendBuf.set(data, 24 + written);
    writeAll(sendBuf.subarray(0, 24 + written + data.length));
    return;
  }
  const head = encoder.encode(text);
  const prefix = new Uint8Array(24 + head.length);
  prefix.set(KEY, 0);
  const view = new DataView(prefix.buffer);
  view.setUint32(16, head.length, true);
  view.setUint32(20, data.length, true);
  prefix.set(head, 24);
  writeAll(prefix);
  writeAll(data);
}

// The host's frames on stdin, parsed where they were read, with no copy but
// the payload's. `next()`: the next whole frame as [header, payload, head]
// (`head`: the header's bytes, valid until the next read), or null; `read()`
// (async) and `readSync()` add what the pipe holds, false at its end. A frame
// larger than the buffer gets a larger one, until it has been taken. An
// unreadable header is answered here.
function hostFrames() {
  const SIZE = 1 << 20;
  let buf = new Uint8Array(SIZE);
  let view = new DataView(buf.buffer);
  let start = 0; // the first byte not yet taken
  let end = 0; // the end of what was read
  // Room for a read: the part of a frame read so far moves to the front of a
  // buffer large enough for the whole frame.
  function room() {
    const rest = end - start;
    const size = Math.max(SIZE, rest >= 8 ? 8 + view.getUint32(start, true) + view.getUint32(start + 4, true) : 0);
    if (size !== buf.length) {
      const next = new Uint8Array(size);
      next.set(buf.subarray(start, end));
      buf = next;
      view = new DataView(buf.buffer);
    } else if (start > 0) {
      buf.copyWithin(0, start, end);
    }
    start = 0;
    end = rest;
  }
  return {
    next() {
      while (end - start >= 8) {
        const headLen = view.getUint32(start, true);
        const total = 8 + headLen + view.getUint32(start + 4, true);
        if (end - start < total) return null;
        const head = buf.subarray(start + 8, start + 8 + headLen);
        const payload = total > 8 + headLen ? buf.slice(start + 8 + headLen, start + total) : EMPTY;
        start += total;
        try {
          return [JSON.parse(decoder.decode(head)), payload, head];
        } catch {
          send({ t: "error", message: "unreadable frame from host" });
        }
      }
      return null;
    },
    async read() {
      room();
      const n = await hostIn.read(buf.subarray(end));
      if (n === null) return false;
      end += n;
      return true;
    },
    readSync() {
      room();
      const n = hostIn.readSync(buf.subarray(end));
      if (n === null) return false;
      end += n;
      return true;
    },
  };
}

// The host's next frame, read asynchronously (null at the end of stdin).
async function nextFrame() {
  for (;;) {
    const frame = stdin.next();
    if (frame !== null) return frame;
    reading = true;
    const more = await stdin.read();
    reading = false;
    if (!more) return null;
  }
}

// --- the worker --------------------------------------------------------------

const interrupt = new Uint8Array(new SharedArrayBuffer(1));

let snapshot = null;
let worker = null;
let ch = null; // the current worker's channel
let ready = false;
let current = null; // the exec under way: {id, reason, timers, outBytes, limit}
let waiting = null; // an exec posted before the worker was ready
let pendingCall = null; // the host call the worker is parked on
let cellEnded = null; // resolves the wait of the loop reading stdin when the cell ends (see the end of this file)
let callSeq = 0;
let firstBoot = true;

function spawn(init, onMessage) {
  const w = new Worker(new URL("./worker.js", import.meta.url).href, {
    type: "module",
    name: "pyodide",
    deno: { permissions: WORKER_PERMISSIONS },
  });
  let pending = init; // handed over once: guest code can post "alive" too
  w.onmessage = (e) => {
    const m = e.data;
    if (m === null || typeof m !== "object" || typeof m.t !== "string") return;
    if (m.t === "alive") {
      if (pending) w.postMessage(pending);
      pending = null;
      loadCpuUsage();
    } else onMessage(m);
  };
  w.onerror = (e) => {
    e.preventDefault();
    if (w === worker) lost(`worker error: ${e.message}`);
  };
  return w;
}

function makeSnapshot() {
  return new Promise((resolve, reject) => {
    const w = spawn({ t: "init", make: true, indexURL: config.indexURL, preload: config.preload }, (m) => {
      if (m.t === "snapshot" && m.data instanceof Uint8Array) {
        w.terminate();
        resolve(m.data);
      } else if (m.t === "booterror") {
        w.terminate();
        reject(new Error(String(m.message)));
      }
    });
  });
}

function start() {
  ready = false;
  unwatchIdle(); // a worker's boot is not idle
  Atomics.store(interrupt, 0, 0); // a stop meant for the old worker must not hit the new one
  ch = createChannel();
  // The worker reads the snapshot itself, while it loads Pyodide, unless we
  // have just made it; nothing keeps its 31 MB here after that.
  const init = { t: "init", snapshot, snapshotPath: config.snapshot, indexURL: config.indexURL, interrupt: interrupt.buffer, channel: ch };
  const w = spawn(init, (m) => {
    // Over postMessage only boot messages count, and only from this worker.
    if (w !== worker) return;
    if (m.t === "ready" && !ready) onReady();
    else if (m.t === "booterror" && !ready) send({ t: "fatal", message: String(m.message).slice(0, 10000) });
  });
  worker = w;
  listen(w, ch);
}

// Take the worker's messages from the shared channel as they come.
async function listen(w, c) {
  const { ctl } = c;
  const view = new Uint8Array(c.up); // grows with the buffer
  for (;;) {
    const r = Atomics.waitAsync(ctl, UP, 0);
    if (r.async) await r.value;
    if (w !== worker || Atomics.load(ctl, DEAD)) return;
    const headLen = ctl[UP_HEAD];
    const dataLen = ctl[UP_DATA];
    let header = null;
    try {
      header = JSON.parse(decoder.decode(view.subarray(0, headLen)));
    } catch {
      header = null;
    }
    const payload = dataLen > 0 ? view.slice(headLen, headLen + dataLen) : EMPTY;
    Atomics.store(ctl, UP, 0);
    Atomics.notify(ctl, UP);
    if (header !== null && typeof header === "object") onWorker(header, payload);
  }
}

function onReady() {
  ready = true;
  snapshot = null;
  if (!current) watchIdle();
  if (firstBoot) {
    firstBoot = false;
    send({ t: "ready" });
  }
  trimSoon();
  if (waiting) {
    const msg = waiting;
    waiting = null;
    if (current && current.id === msg.id) deliver(msg);
  }
}

// A boot, and cells, leave much of what malloc took free but resident
// (compiler zones between blocks still live: 6-8 MB a runtime), and glibc
// gives it back only on malloc_trim(0), which Deno calls when a worker's
// thread ends. So, once idle for a second, a worker with nothing to do is
// started, and ends at once (about 12 ms of CPU).
let trimTimer = null;
function trimSoon() {
  clearTimeout(trimTimer);
  trimTimer = setTimeout(trimMalloc, 1000);
}

function trimMalloc() {
  if (current) return; // a cell runs: its end schedules the next
  try {
    const w = new Worker("data:text/javascript,close()", { type: "module", name: "trim", deno: { permissions: "none" } });
    w.onerror = (e) => e.preventDefault(); // only memory is at stake
  } catch {
    // no thread to be had just now: the next cell's end tries again
  }
}

function command(msg) {
  const { ctl } = ch;
  const bytes = encoder.encode(JSON.stringify(msg));
  put(ch.down, bytes, null);
  ctl[DOWN_LEN] = bytes.length;
  Atomics.add(ctl, DOWN, 1);
  Atomics.notify(ctl, DOWN);
}

function onWorker(m, payload) {
  switch (m.t) {
    case "out":
      return onOutput(m, payload);
    case "call":
      return onCall(m, payload);
    case "result":
      return onResult(m);
  }
  // Anything else is ignored: the worker has no other business with us.
}

function onOutput(m, payload) {
  if (!current || (m.s !== "stdout" && m.s !== "stderr")) return;
  if (current.reason === "output") return;
  let data = payload;
  const room = current.outputLimit - current.outBytes;
  if (data.length > room) {
    data = data.subarray(0, Math.max(room, 0));
    stop("output");
  }
  current.outBytes += data.length;
  // In pieces well under the host's frame limit (output_bytes may be larger).
  for (let off = 0; off < data.length; off += FRAME_BYTES >> 1) {
    send({ t: "out", id: current.id, s: m.s }, data.subarray(off, off + (FRAME_BYTES >> 1)));
  }
}

function onCall(m, payload) {
  if (pendingCall) {
    // Only a worker that is not parked could post this: it is forged. Say so
    // to the host and leave the real call alone.
    send({ t: "warn", message: "ignored an overlapping host call from the guest" });
    return;
  }
  // The worker is parked on this call: a bad one is answered here, at once.
  const bad = typeof m.name !== "string" || !m.name || m.name.length > 200
    ? "a host function name must be a string of 1 to 200 characters"
    : typeof m.args !== "string"
    ? "host call arguments must be a JSON string"
    : m.args.length > MAX_FIELD
    ? `host call arguments are too large (over ${MAX_FIELD} characters); send bytes as data`
    : null;
  if (bad) return answer({ ok: false, error: { type: "ValueError", message: bad } }, new Uint8Array(0));
  pendingCall = { id: ++callSeq };
  send({ t: "call", id: pendingCall.id, name: m.name, args: m.args }, payload);
  // The worker is parked until the reply, and while a cell runs the host sends
  // nothing but replies: the reply is read here, synchronously, unless an async
  // read is under way (see the loop at the end of this file). An async read
  // of stdin costs one of Deno's threads and a wake-up of this one, for
  // every reply.
  while (pendingCall && !reading) {
    const frame = stdin.next();
    if (frame !== null) onHost(...frame);
    else if (!stdin.readSync()) Deno.exit(0);
  }
}

function onReply(header, payload, head) {
  if (!pendingCall || header.id !== pendingCall.id) return; // stale: the worker was replaced
  pendingCall = null;
  // The host's own header goes to the worker as it came (ok, value, error),
  // not encoded a second time.
  answer(header, payload, head);
  if (header.cut === true && current) {
    // The host cut this call at the cell's deadline (its clock starts a
    // moment before ours) and answered it with a TimeoutError: the guest sees
    // that error first; one that goes on anyway is interrupted halfway
    // through the grace period, and killed at its end as usual.
    clearTimeout(current.softTimer);
    if (!current.reason) {
      current.reason = "timeout";
      current.hardTimer = setTimeout(() => kill("timeout"), current.grace * 1000);
    }
    clearTimeout(current.lateTimer);
    current.lateTimer = setTimeout(() => Atomics.store(interrupt, 0, 2), current.grace * 500);
  }
}

// Put a reply into the mailbox and wake the parked worker; `head`: the reply already encoded.
function answer(reply, payload, head = null) {
  const { ctl } = ch;
  head ??= encoder.encode(JSON.stringify(reply));
  if (!put(ch.mailbox, head, payload)) {
    head = encoder.encode(JSON.stringify({ ok: false, error: { type: "ValueError", message: "host reply too large" } }));
    payload = new Uint8Array(0);
    put(ch.mailbox, head, payload);
  }
  ctl[REPLY_HEAD] = head.length;
  ctl[REPLY_DATA] = payload.length;
  Atomics.store(ctl, REPLY, 1);
  Atomics.notify(ctl, REPLY);
}

function onResult(m) {
  if (!current || m.id !== current.id || typeof m.json !== "string") return;
  if (m.json.length > FRAME_BYTES || encoder.encode(JSON.stringify(m.json)).length > FRAME_BYTES >> 1) {
    const message = `the cell's result is too large to return (${m.json.length} characters)`;
    return finish({ r: JSON.stringify({ error: { type: "ValueError", message, traceback: "" } }) });
  }
  if (m.broken === true) {
    // The interpreter failed beneath Python: report the cell, then have the runtime replaced.
    return retire({ r: m.json, killed: "crash", message: "the interpreter failed beneath Python" });
  }
  finish({ r: m.json });
}

function finish(fields) {
  const c = current;
  current = null;
  cellEnded?.();
  cellEnded = null;
  clearTimeout(c.softTimer);
  clearTimeout(c.hardTimer);
  watchIdle();
  clearTimeout(c.lateTimer);
  send({ t: "result", id: c.id, limit: c.reason ?? null, ...fields });
  trimSoon();
}

// Stop the exec under way: a KeyboardInterrupt first, then after the grace
// period the worker is killed and a fresh one booted from the snapshot.
function stop(reason) {
  if (!current || current.reason) return;
  current.reason = reason;
  // A worker parked in a host call at its deadline: the host cuts that call
  // at the same deadline, and the interrupt waits for its answer (onReply).
  if (reason !== "timeout" || !pendingCall) Atomics.store(interrupt, 0, 2);
  current.hardTimer = setTimeout(() => kill(reason), current.grace * 1000);
}

function kill(reason) {
  retire({ r: null, killed: reason });
}

// End the exec under way with this result, and this process with it: the
// host starts a new runtime. A worker is not replaced in place, because
// worker.terminate() stops neither a thread stuck in JS code (it runs on, a
// core busy, as long as the process lives: deno#35657) nor the workers guest
// code started from it.
function retire(fields) {
  release();
  if (current) finish({ restarted: true, exit: true, ...fields });
  Deno.exit(0);
}

// Wake whatever waits on the old channel, so nothing is left hanging.
function release() {
  Atomics.store(ch.ctl, DEAD, 1);
  for (const i of [UP, REPLY, DOWN]) Atomics.notify(ch.ctl, i);
}

function lost(message) {
  // The worker died by itself (out of memory in JS, a crash): replace it.
  if (current) {
    current.reason = current.reason ?? "crash";
    return retire({ r: null, killed: "crash", message });
  }
  release();
  worker.terminate();
  pendingCall = null;
  start();
}

function onExec(h) {
  if (current) {
    send({ t: "result", id: h.id, limit: null, r: JSON.stringify({ error: { type: "RuntimeError", message: "busy: an exec is already running", traceback: "" } }) });
    return;
  }
  unwatchIdle();
  current = {
    id: h.id,
    reason: null,
    outBytes: 0,
    outputLimit: h.outputLimit,
    grace: h.grace,
  };
  const cell = typeof h.cell === "number" ? h.cell : null;
  const msg = { t: "exec", id: h.id, cell, code: h.code, timeout: h.timeout };
  if (ready) deliver(msg);
  else waiting = msg;
}

// The deadline runs from when the worker gets the cell, not from when the
// host sent it (a worker being replaced may still be booting).
function deliver(msg) {
  Atomics.store(interrupt, 0, 0);
  command({ t: "exec", id: msg.id, cell: msg.cell, code: msg.code });
  current.softTimer = setTimeout(() => stop("timeout"), msg.timeout * 1000);
}

function onHost(header, payload, head) {
  switch (header.t) {
    case "exec":
      if (typeof header.id === "number" && typeof header.code === "string" && typeof header.timeout === "number") {
        return onExec(header);
      }
      break;
    case "reply":
      return onReply(header, payload, head);
    case "interrupt":
      return stop("interrupt");
    case "shutdown":
      Deno.exit(0);
  }
  send({ t: "error", message: `bad message from host: ${String(header.t).slice(0, 50)}` });
}

// --- idle watch ----------------------------------------------------------------

// Between cells the runtime uses no CPU: the worker sleeps (see `serve` in
// worker.js) and guest code can start no threads. What could still run is work
// guest code handed to Deno's own threads and did not wait for (node:crypto's
// pbkdf2 with 2e9 rounds: an hour of a core). Nothing stops that but the end
// of the process. So while no cell runs, the process's CPU time (all threads)
// is sampled, and past IDLE_CPU in any IDLE_WINDOW the runtime ends itself; the
// host starts a new one for the next cell, which says `restarted`.
const IDLE_WINDOW = 2000; // ms
const IDLE_CPU = 300_000; // us
const IDLE_TICK = 500; // ms
let idleWatch = null;
// The CPU time comes from node:process, and Deno's Node layer takes 30-60 ms
// to load: it loads while the worker boots (once the worker has its init
// message, see `spawn`), off the path to the first result. Until it is
// there, there are no samples.
let cpuUsage = null;
let cpuUsageLoading = false;

function loadCpuUsage() {
  if (cpuUsageLoading) return;
  cpuUsageLoading = true;
  import("node:process").then((m) => (cpuUsage = () => m.default.cpuUsage()));
}

function cpuTime() {
  const u = cpuUsage();
  return u.user + u.system;
}

function watchIdle() {
  if (idleWatch !== null) return;
  const samples = cpuUsage ? [[performance.now(), cpuTime()]] : [];
  idleWatch = setInterval(() => {
    if (!cpuUsage) return;
    const now = [performance.now(), cpuTime()];
    if (!samples.length) samples.push(now);
    samples.push(now);
    while (now[0] - samples[0][0] > IDLE_WINDOW + IDLE_TICK / 2) samples.shift();
    const used = now[1] - samples[0][1];
    if (used > IDLE_CPU) {
      const wall = (now[0] - samples[0][0]) / 1000;
      console.error(`throwaway: work guest code left running used ${(used / 1e6).toFixed(2)} s of CPU ` +
        `in ${wall.toFixed(1)} s between cells; the runtime ended itself`);
      Deno.exit(0);
    }
  }, IDLE_TICK);
}

function unwatchIdle() {
  clearInterval(idleWatch);
  idleWatch = null;
}

// --- boot ----------------------------------------------------------------------

try {
  Deno.statSync(config.snapshot);
} catch {
  try {
    snapshot = await makeSnapshot();
  } catch (err) {
    send({ t: "fatal", message: `could not boot Pyodide: ${err.message}` });
    Deno.exit(1);
  }
  send({ t: "snapshot" }, snapshot);
}
start();
for (let frame; (frame = await nextFrame()) !== null;) {
  onHost(...frame);
  // While a cell runs, no read of stdin is kept waiting: the host sends only
  // the replies to the cell's host calls then, and `onCall` reads each one
  // itself. The next read starts when the cell ends.
  if (current) await new Promise((resolve) => (cellEnded = resolve));
}
Deno.exit(0);
