// Shared memory between the main thread and the worker.
//
// postMessage between Deno threads costs about 150 us a hop here; a
// SharedArrayBuffer with Atomics.wait on the worker side and
// Atomics.waitAsync on the main side costs about 12 us. So commands, host
// calls, output and results cross through these buffers; postMessage is left
// for booting.

export const UP = 0; // worker -> main: 1 while a message waits to be taken
export const UP_HEAD = 1;
export const UP_DATA = 2;
export const REPLY = 3; // main -> worker: 1 when a host call's reply is in the mailbox
export const REPLY_HEAD = 4;
export const REPLY_DATA = 5;
export const DOWN = 6; // main -> worker: a command counter
export const DOWN_LEN = 7;
export const DEAD = 8; // set when the worker is killed, to release waiters

const MAX = 1 << 30;

export function createChannel() {
  return {
    ctl: new Int32Array(new SharedArrayBuffer(4 * 9)),
    up: new SharedArrayBuffer(1 << 16, { maxByteLength: MAX }),
    down: new SharedArrayBuffer(1 << 16, { maxByteLength: MAX }),
    mailbox: new SharedArrayBuffer(1 << 16, { maxByteLength: MAX }),
  };
}

// Write head (bytes) and payload (bytes) into a growable buffer; false if too large.
export function put(buffer, head, payload) {
  const need = head.length + (payload ? payload.length : 0);
  if (need > buffer.maxByteLength) return false;
  if (need > buffer.byteLength) buffer.grow(need);
  const view = new Uint8Array(buffer);
  view.set(head, 0);
  if (payload) view.set(payload, head.length);
  return true;
}

const encoder = new TextEncoder();

// Write JSON text (encoded straight into the buffer, no copy made first) and
// payload bytes into a growable buffer; the text's length in bytes, or -1 if
// the two do not fit even grown.
export function putText(buffer, text, payload) {
  const size = payload ? payload.length : 0;
  const view = new Uint8Array(buffer); // grows with the buffer
  const { read, written } = encoder.encodeInto(text, view);
  if (read < text.length) {
    const head = encoder.encode(text);
    return put(buffer, head, payload) ? head.length : -1;
  }
  if (written + size > buffer.byteLength) {
    if (written + size > buffer.maxByteLength) return -1;
    buffer.grow(written + size);
  }
  if (payload) view.set(payload, written);
  return written;
}
