// The Pyodide worker: guest Python runs here, with no Deno permissions but
// read access to Pyodide's assets, this folder and the package cache.
//
// Everything in this worker is reachable from guest code (`import js`), so
// nothing here is trusted by the main thread: it validates what we post.

const decoder = new TextDecoder();
let py = null;
let runCell = null;
let ctl = null; // Int32Array on a SharedArrayBuffer: [state, headLen, payloadLen]
let mailbox = null; // SharedArrayBuffer (growable) holding a host reply

// A synchronous call to the host: post the request, then park this thread
// until the main thread has written the reply into the mailbox.
function hostCall(name, args, data) {
  let bytes;
  if (data !== undefined && data !== null) {
    bytes = data.toJs ? data.toJs() : new Uint8Array(data);
    if (data.destroy) data.destroy();
  }
  Atomics.store(ctl, 0, 0);
  postMessage({ t: "call", name, args, data: bytes }, bytes ? [bytes.buffer] : []);
  Atomics.wait(ctl, 0, 0);
  const headLen = ctl[1];
  const payloadLen = ctl[2];
  const view = new Uint8Array(mailbox);
  const head = decoder.decode(view.slice(0, headLen));
  const payload = view.slice(headLen, headLen + payloadLen);
  return [head, payload];
}

function streamTo(stream) {
  return {
    write(buf) {
      postMessage({ t: "out", s: stream, data: buf.slice() });
      return buf.length;
    },
    isatty: false,
  };
}

async function init(m) {
  const { loadPyodide } = await import(new URL("pyodide.mjs", "file://" + m.indexURL).href);
  const options = { indexURL: m.indexURL, stdout: () => {}, stderr: () => {} };
  if (m.make) options._makeSnapshot = true;
  else options._loadSnapshot = m.snapshot;
  py = await loadPyodide(options);
  if (m.make) {
    // Our guest module is imported before the snapshot, so booting from the
    // snapshot finds it ready.
    const source = Deno.readTextFileSync(new URL("./guest.py", import.meta.url));
    py.FS.mkdirTree("/lib/throwaway");
    py.FS.writeFile("/lib/throwaway/_throwaway.py", source);
    py.runPython("import sys; sys.path.insert(0, '/lib/throwaway'); import _throwaway; _throwaway.boot()");
    for (const name of m.preload ?? []) await py.loadPackage(name);
    const snapshot = py.makeMemorySnapshot();
    postMessage({ t: "snapshot", data: snapshot }, [snapshot.buffer]);
    return;
  }
  ctl = new Int32Array(m.ctl);
  mailbox = m.mailbox;
  py.setInterruptBuffer(new Uint8Array(m.interrupt));
  py.setStdout(streamTo("stdout"));
  py.setStderr(streamTo("stderr"));
  py.registerJsModule("_throwaway_host", { call: hostCall });
  runCell = py.pyimport("_throwaway").run_cell;
  postMessage({ t: "ready" });
}

async function exec(m) {
  let json;
  try {
    let r = runCell(m.code, m.id);
    if (typeof r !== "string") {
      const coro = r;
      try {
        r = await coro;
      } finally {
        coro.destroy?.();
      }
    }
    json = r;
  } catch (err) {
    json = JSON.stringify({ error: { type: "RuntimeError", message: String(err?.message ?? err), traceback: "" } });
  }
  postMessage({ t: "result", id: m.id, json });
}

self.onmessage = (e) => {
  const m = e.data;
  if (m.t === "init") {
    init(m).catch((err) => postMessage({ t: "booterror", message: String(err?.stack ?? err) }));
  } else if (m.t === "exec") {
    exec(m);
  }
};

// Announce readiness only now that the handler is set: a message posted
// before it would be lost.
postMessage({ t: "alive" });
