// The Pyodide worker: guest Python runs here, with no Deno permissions but
// read access to Pyodide's assets, this folder and the package cache.
//
// Everything in this worker's global scope is reachable from guest code
// (`import js`); what the main thread receives from here is checked there.

import { DEAD, DOWN, DOWN_LEN, putText, REPLY, REPLY_DATA, REPLY_HEAD, UP, UP_DATA, UP_HEAD } from "./channel.js";
import { createHostFS } from "./hostfs.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let py = null;
let runCell = null;
let ch = null;
let mailbox = null; // a view of ch.mailbox (it grows with the buffer)
let hostfs = null;

// In a worker, console.log writes to the process's stdout, which is /dev/null
// (the frames travel on pipes of their own): what guest code (js.console.log)
// and Pyodide (loadPackage's messages) log there would vanish. Send it to the
// cell's stderr instead.
const consoleError = console.error.bind(console);
function consoleOut(...args) {
  const text = args.map((a) => (typeof a === "string" ? a : Deno.inspect(a))).join(" ");
  if (ch) post({ t: "out", s: "stderr" }, encoder.encode(text + "\n"));
  else consoleError(text);
}
for (const name of ["log", "info", "debug", "dir", "dirxml", "table"]) console[name] = consoleOut;

// Hand a message to the main thread: wait until the previous one was taken,
// write this one into the shared buffer, wake the main thread.
function post(header, payload) {
  const { ctl } = ch;
  while (Atomics.load(ctl, UP) !== 0 && Atomics.load(ctl, DEAD) === 0) Atomics.wait(ctl, UP, 1, 1000);
  let headLen = putText(ch.up, JSON.stringify(header), payload);
  if (headLen < 0) {
    payload = encoder.encode("[throwaway: a message too large to send was dropped]\n");
    headLen = putText(ch.up, JSON.stringify({ t: "out", s: "stderr" }), payload);
  }
  ctl[UP_HEAD] = headLen;
  ctl[UP_DATA] = payload ? payload.length : 0;
  Atomics.store(ctl, UP, 1);
  Atomics.notify(ctl, UP);
}

// A synchronous call to the host: post the request, then park this thread
// until the main thread has put the reply into the mailbox.
function rawCall(name, argsJson, bytes) {
  const { ctl } = ch;
  Atomics.store(ctl, REPLY, 0);
  post({ t: "call", name, args: argsJson }, bytes);
  Atomics.wait(ctl, REPLY, 0);
  const headLen = ctl[REPLY_HEAD];
  const head = decoder.decode(mailbox.subarray(0, headLen));
  // A copy: the mailbox takes the next reply, and HOSTFS keeps a file's bytes.
  const payload = mailbox.slice(headLen, headLen + ctl[REPLY_DATA]);
  return [head, payload];
}

// The guest's `throwaway.call`: JSON text and bytes in, [JSON text, bytes] out.
function hostCall(name, argsJson, data) {
  let bytes;
  if (data !== undefined && data !== null) {
    bytes = data.toJs ? data.toJs() : new Uint8Array(data);
    data.destroy?.();
  }
  return rawCall(name, argsJson, bytes);
}

// The same for JavaScript callers (HOSTFS): objects in, {ok, value, error, payload} out.
function callHost(name, args, bytes) {
  const [head, payload] = rawCall(name, JSON.stringify(args), bytes);
  return { ...JSON.parse(head), payload };
}

// Mount a host-backed file system at a guest path (called by the guest module, guest/_throwaway.py).
function mountHost(path, id) {
  py.FS.mkdirTree(path);
  py.FS.mount(hostfs, { id }, path);
}

function streamTo(stream) {
  return {
    write(buf) {
      post({ t: "out", s: stream }, buf);
      return buf.length;
    },
    isatty: false,
  };
}

async function exec(m) {
  let json;
  hostfs.newEpoch();
  try {
    let r = runCell(m.code, m.cell);
    if (typeof r !== "string") {
      const coro = r;
      try {
        r = await coro;
      } finally {
        coro.destroy?.();
      }
    }
    // Guest code can replace the runner's helpers: a result that is not
    // text would leave the cell hanging until its deadline.
    json = typeof r === "string" ? r : JSON.stringify({ error: { type: "RuntimeError", message: "the cell's runner returned no result", traceback: "" } });
  } catch (err) {
    // A JS error (not a Python one) got past the runner: the interpreter failed
    // beneath Python (a JS stack overflow from deep recursion, a wasm trap)
    // and its state cannot be trusted: the main thread replaces this worker.
    json = JSON.stringify({ error: { type: "RuntimeError", message: String(err?.message ?? err), traceback: "" } });
    if (err?.name !== "PythonError") return post({ t: "result", id: m.id, json, broken: true });
  }
  post({ t: "result", id: m.id, json });
}

// Wait for commands with this thread asleep (Atomics.wait, not waitAsync):
// between cells nothing runs here, neither the JS timers, callbacks and
// promise jobs guest code left behind nor its asyncio tasks. They are held,
// not dropped: they go on while a later cell awaits something.
async function serve() {
  const { ctl } = ch;
  let seen = 0;
  for (;;) {
    while (Atomics.load(ctl, DOWN) === seen) {
      if (Atomics.load(ctl, DEAD)) return;
      Atomics.wait(ctl, DOWN, seen);
    }
    seen = Atomics.load(ctl, DOWN);
    const m = JSON.parse(decoder.decode(new Uint8Array(ch.down).slice(0, ctl[DOWN_LEN])));
    if (m.t === "exec") await exec(m);
  }
}

// Guest code may start no threads: a thread would run on between cells, out
// of reach of every deadline, and one stuck in JS code cannot be stopped
// short of ending the process (see `retire` in main.js). The two ways to
// start one, the web Worker and node:worker_threads' Worker, are classes
// whose constructors call super() first: each gets a parent that throws and
// is frozen, so no reference to it (the global, an import, require, a
// subclass, Reflect.construct) can start a thread.
async function closeThreads() {
  const noThreads = function Worker() {
    throw new TypeError("Workers are not available in the sandbox: guest code runs on one thread, in its cells");
  };
  for (const W of [globalThis.Worker, (await import("node:worker_threads")).Worker]) {
    Object.setPrototypeOf(W, noThreads);
    Object.freeze(W);
  }
}

// Pyodide's boot, made to leave less memory resident. Pyodide reads its wasm
// file into a buffer it keeps for good, and restores the snapshot by copying
// all of it into wasm memory, zero pages too (about 16 of its 30 MB), which
// makes them resident for nothing: fresh wasm memory reads as zero without
// taking any. So, while Pyodide loads, the main module's bytes and memory are
// noted at instantiation (the bytes to be freed once it is compiled, the
// memory to restore the snapshot into page by page).
function watchInstantiate() {
  const instantiate = WebAssembly.instantiate;
  const seen = { bytes: null, memory: null };
  WebAssembly.instantiate = function (source, ...rest) {
    const result = instantiate.call(this, source, ...rest);
    if (ArrayBuffer.isView(source) && seen.bytes === null) {
      seen.bytes = source;
      result.then((r) => {
        if (r?.instance?.exports?.memory instanceof WebAssembly.Memory) seen.memory = r.instance.exports.memory;
      }, () => {});
    }
    return result;
  };
  return {
    seen,
    unwatch() {
      WebAssembly.instantiate = instantiate;
    },
    dropBytes() {
      try {
        seen.bytes?.buffer.transfer?.(0);
      } catch {
        // not detachable: left to the collector
      }
      seen.bytes = null;
    },
  };
}

// Pyodide (restoreSnapshot) copies the snapshot with `HEAP8.set(snapshot.subarray(offset))`:
// that one call copies here instead, leaving zero pages alone where wasm
// memory is zero already, and hands Pyodide nothing left to copy. Any other
// use of subarray, or a memory not seen, takes Pyodide's own way.
function restoreSparsely(bytes, wasm) {
  const snapshot = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  snapshot.subarray = function (start, end) {
    const part = Uint8Array.prototype.subarray.call(this, start, end);
    const memory = wasm.seen.memory;
    if (end !== undefined || !memory || part.byteOffset % 4 !== 0 || memory.buffer.byteLength < part.length) return part;
    copyNonZeroPages(new Uint8Array(memory.buffer), part);
    return part.subarray(0, 0);
  };
  return snapshot;
}

function copyNonZeroPages(heap, src) {
  const PAGE = 4096;
  const n = src.length;
  const src32 = new Int32Array(src.buffer, src.byteOffset, n >> 2);
  const heap32 = new Int32Array(heap.buffer, 0, n >> 2);
  const isZero = (a, from, to) => { // a page: 1024 words, 8 at a time
    for (let i = from; i < to; i += 8) {
      if ((a[i] | a[i + 1] | a[i + 2] | a[i + 3] | a[i + 4] | a[i + 5] | a[i + 6] | a[i + 7]) !== 0) return false;
    }
    return true;
  };
  let run = -1; // the start of pages to copy
  for (let off = 0; off < n; off += PAGE) {
    if (off + PAGE > n || !isZero(src32, off >> 2, (off + PAGE) >> 2)) {
      if (run < 0) run = off;
      continue;
    }
    if (run >= 0) heap.set(src.subarray(run, off), run);
    run = -1;
    // Reading an untouched page maps the kernel's zero page: nothing resident.
    if (!isZero(heap32, off >> 2, (off + PAGE) >> 2)) heap.fill(0, off, off + PAGE);
  }
  if (run >= 0) heap.set(src.subarray(run, n), run);
}

// Deno.readFile takes 80-150 ms for the 31 MB boot snapshot here (it grows
// its buffer as it reads, then copies it into JS memory); reading into one
// buffer of the file's size takes 15-40 ms, and the boot waits for it.
async function readWhole(path) {
  const file = await Deno.open(path);
  try {
    const { size } = await file.stat();
    const bytes = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = await file.read(bytes.subarray(off));
      if (n === null) break;
      off += n;
    }
    return off === size ? bytes : bytes.subarray(0, off);
  } finally {
    file.close();
  }
}

// Pyodide writes the standard library's zip (2.4 MB) into its in-memory file
// system with FS.writeFile, which copies it, and the bytes read stay in this
// thread's heap with nothing to collect them: the file system may keep the
// bytes read instead (canOwn). Installed by the fsInit hook, which runs while
// Pyodide still awaits the zip's bytes; undone once Pyodide has loaded.
function ownStdlib(FS) {
  const writeFile = FS.writeFile;
  FS.writeFile = function (path, data, opts = {}) {
    if (typeof path === "string" && /^\/lib\/python[0-9]+\.zip$/.test(path) && data instanceof Uint8Array) {
      opts = { ...opts, canOwn: true };
    }
    return writeFile.call(this, path, data, opts);
  };
  return () => {
    FS.writeFile = writeFile;
  };
}

async function init(m) {
  const { loadPyodide } = await import(new URL("pyodide.mjs", "file://" + m.indexURL).href);
  const options = { indexURL: m.indexURL, stdout: () => {}, stderr: () => {} };
  const wasm = watchInstantiate();
  const snapshot = m.make ? null : Promise.resolve(m.snapshot ?? readWhole(m.snapshotPath)) // read while Pyodide loads
    .then((bytes) => restoreSparsely(bytes, wasm));
  if (m.make) options._makeSnapshot = true;
  else options._loadSnapshot = snapshot;
  let unownStdlib = null;
  options.fsInit = (FS) => {
    unownStdlib = ownStdlib(FS);
  };
  try {
    py = await loadPyodide(options);
  } finally {
    wasm.unwatch();
    unownStdlib?.();
  }
  // The snapshot's bytes (31 MB) are copied into wasm memory by now, but
  // Pyodide keeps its options, and them, for the interpreter's life, and this
  // thread, asleep in Atomics.wait between cells, would never collect them:
  // detaching their buffer frees it at once. The same for the bytes of
  // Pyodide's wasm file, which Pyodide keeps too (9-12 MB): the compiled
  // module holds a copy of its own.
  if (snapshot) (await snapshot).buffer.transfer?.(0);
  wasm.dropBytes();
  if (m.make) {
    // Our guest module is imported before the snapshot, so booting from the
    // snapshot finds it ready.
    const source = Deno.readTextFileSync(new URL("../guest/_throwaway.py", import.meta.url));
    py.FS.mkdirTree("/lib/throwaway");
    py.FS.writeFile("/lib/throwaway/_throwaway.py", source);
    py.runPython("import sys; sys.path.insert(0, '/lib/throwaway'); import _throwaway; _throwaway.boot()");
    for (const name of m.preload ?? []) await py.loadPackage(name);
    const snapshot = py.makeMemorySnapshot();
    postMessage({ t: "snapshot", data: snapshot }, [snapshot.buffer]);
    return;
  }
  ch = m.channel;
  mailbox = new Uint8Array(ch.mailbox);
  py.setInterruptBuffer(new Uint8Array(m.interrupt));
  py.setStdout(streamTo("stdout"));
  py.setStderr(streamTo("stderr"));
  const errnoCodes = py.runPython("import errno; {n: getattr(errno, n) for n in dir(errno) if n.startswith('E')}").toJs({ dict_converter: Object.fromEntries });
  hostfs = createHostFS(py.FS, callHost, errnoCodes);
  py.registerJsModule("_throwaway_host", { call: hostCall, mount: mountHost });
  runCell = py.pyimport("_throwaway").run_cell;
  await closeThreads();
  postMessage({ t: "ready" });
  serve();
}

self.onmessage = (e) => {
  if (e.data?.t === "init" && py === null) {
    init(e.data).catch((err) => postMessage({ t: "booterror", message: String(err?.stack ?? err) }));
  }
};

// Announce readiness only now that the handler is set: a message posted
// before it would be lost.
postMessage({ t: "alive" });
