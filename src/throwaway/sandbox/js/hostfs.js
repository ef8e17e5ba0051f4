// HOSTFS: an Emscripten file-system type whose operations call the host.
//
// A host-backed mount (a host folder, a resource folder) is mounted in the
// guest's tree as HOSTFS, so open(), os.listdir(), os.stat(), pathlib and C
// extensions all reach the host, synchronously, with nothing copied ahead of
// time. The host checks every path; its errors arrive as errno names that
// become ordinary OSErrors here.
//
// Reads: open() brings small files whole; larger ones come in chunks.
// Writes: buffered here and sent in chunks, at the latest on close.

const CHUNK = 4 << 20;
const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;
const S_IFDIR = 0o040000;

export function createHostFS(FS, call, errnoCodes) {
  let epoch = 0; // node attributes are trusted for one cell at most

  function fail(error) {
    const code = errnoCodes[error?.errno] ?? errnoCodes.EIO;
    throw new FS.ErrnoError(code);
  }

  function host(op, args, data) {
    const reply = call("fs", { op, ...args }, data);
    if (!reply.ok) fail(reply.error);
    return reply;
  }

  function relPath(node) {
    const parts = [];
    while (node.parent !== node) {
      parts.push(node.name);
      node = node.parent;
    }
    return "/" + parts.reverse().join("/");
  }

  function child(parent, name) {
    const base = relPath(parent);
    return base === "/" ? "/" + name : base + "/" + name;
  }

  function remember(node, st) {
    node.hostStat = { ...st, epoch };
    node.mode = st.mode;
  }

  function statOf(node) {
    if (node.hostStat && node.hostStat.epoch === epoch) return node.hostStat;
    const { value } = host("stat", { m: node.mount.opts.id, p: relPath(node) });
    remember(node, value);
    return node.hostStat;
  }

  function createNode(parent, name, mode) {
    const node = FS.createNode(parent, name, mode);
    node.node_ops = node_ops;
    node.stream_ops = stream_ops;
    return node;
  }

  const node_ops = {
    getattr(node) {
      const st = statOf(node);
      const t = new Date(st.mtime);
      return {
        dev: 1, ino: node.id, mode: st.mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size: st.size,
        atime: t, mtime: t, ctime: t, blksize: 4096, blocks: Math.ceil(st.size / 512),
      };
    },
    setattr(node, attr) {
      const m = node.mount.opts.id;
      if (attr.size !== undefined) {
        host("truncate", { m, p: relPath(node), size: attr.size });
        node.hostStat = null;
      }
      if (attr.mtime !== undefined || attr.atime !== undefined) {
        host("utime", { m, p: relPath(node), mtime: Number(attr.mtime ?? attr.atime) });
        node.hostStat = null;
      }
      // chmod is not passed on: the host decides what its files' modes are.
    },
    lookup(parent, name) {
      const { value } = host("stat", { m: parent.mount.opts.id, p: child(parent, name) });
      const node = createNode(parent, name, value.mode);
      remember(node, value);
      return node;
    },
    mknod(parent, name, mode) {
      const isDir = (mode & 0o170000) === S_IFDIR;
      const { value } = host(isDir ? "mkdir" : "create", { m: parent.mount.opts.id, p: child(parent, name) });
      const node = createNode(parent, name, value.mode);
      remember(node, value);
      return node;
    },
    rename(oldNode, newDir, newName) {
      host("rename", { m: oldNode.mount.opts.id, p: relPath(oldNode), to: child(newDir, newName) });
      oldNode.name = newName;
      oldNode.hostStat = null;
    },
    unlink(parent, name) {
      host("unlink", { m: parent.mount.opts.id, p: child(parent, name) });
    },
    rmdir(parent, name) {
      host("rmdir", { m: parent.mount.opts.id, p: child(parent, name) });
    },
    readdir(node) {
      const { value } = host("list", { m: node.mount.opts.id, p: relPath(node) });
      return [".", "..", ...value.names];
    },
    symlink() {
      throw new FS.ErrnoError(errnoCodes.EPERM);
    },
    readlink() {
      throw new FS.ErrnoError(errnoCodes.EINVAL);
    },
  };

  function flush(stream) {
    const w = stream.pending;
    if (!w || w.length === 0) return;
    const data = w.buffer.subarray(0, w.length);
    // Dropped before the call: a write the host refuses (quota, caps) is
    // reported once, not sent again by every later read, seek or close.
    stream.pending = null;
    stream.node.hostStat = null;
    host("write", { h: stream.handle, pos: w.pos }, data);
  }

  const stream_ops = {
    open(stream) {
      if ((stream.node.mode & 0o170000) === S_IFDIR) {
        stream.whole = new Uint8Array(0); // a folder opened for listing: readdir does the work
        return;
      }
      const acc = stream.flags & O_ACCMODE;
      const mode = acc === O_WRONLY ? "w" : acc === O_RDWR ? "rw" : "r";
      let reply;
      try {
        reply = host("open", {
          m: stream.node.mount.opts.id,
          p: relPath(stream.node),
          mode,
          trunc: Boolean(stream.flags & O_TRUNC),
          append: Boolean(stream.flags & O_APPEND),
        });
      } catch (e) {
        // FS.open made the stream before calling us and does not free it when
        // we throw: without this, every refused open would use up a guest fd.
        FS.closeStream(stream.fd);
        throw e;
      }
      const { value, payload } = reply;
      stream.handle = value.h;
      stream.whole = value.whole ? payload : null;
      remember(stream.node, value.stat);
    },
    close(stream) {
      try {
        flush(stream);
      } finally {
        if (stream.handle !== undefined && stream.handle !== null) host("close", { h: stream.handle });
        stream.node.hostStat = null;
      }
    },
    read(stream, buffer, offset, length, position) {
      flush(stream);
      if (stream.whole) {
        const n = Math.max(0, Math.min(length, stream.whole.length - position));
        buffer.set(stream.whole.subarray(position, position + n), offset);
        return n;
      }
      let done = 0;
      while (done < length) {
        const want = Math.min(CHUNK, length - done);
        const { payload } = host("read", { h: stream.handle, pos: position + done, len: want });
        buffer.set(payload, offset + done);
        done += payload.length;
        if (payload.length < want) break;
      }
      return done;
    },
    write(stream, buffer, offset, length, position) {
      if (stream.flags & O_APPEND) position = Math.max(position, statOf(stream.node).size);
      stream.whole = null;
      let w = stream.pending;
      if (w && w.pos + w.length !== position) {
        flush(stream);
        w = null;
      }
      if (!w) w = stream.pending = { pos: position, length: 0, buffer: new Uint8Array(Math.max(65536, length)) };
      if (w.length + length > w.buffer.length) {
        const grown = new Uint8Array(Math.max(w.buffer.length * 2, w.length + length));
        grown.set(w.buffer.subarray(0, w.length));
        w.buffer = grown;
      }
      w.buffer.set(buffer.subarray(offset, offset + length), w.length);
      w.length += length;
      if (w.length >= CHUNK) flush(stream);
      return length;
    },
    llseek(stream, offset, whence) {
      let position = offset;
      if (whence === 1) position += stream.position;
      else if (whence === 2) {
        flush(stream);
        position += statOf(stream.node).size;
      }
      if (position < 0) throw new FS.ErrnoError(errnoCodes.EINVAL);
      return position;
    },
    fsync(stream) {
      flush(stream);
      return 0;
    },
  };

  return {
    mount(mount) {
      const { value } = host("stat", { m: mount.opts.id, p: "/" });
      const node = createNode(null, "/", value.mode);
      remember(node, value);
      return node;
    },
    newEpoch() {
      epoch += 1;
    },
  };
}
