// The sukiyaki runtime's Web Worker: Pyodide, numpy and the sukiyaki wheel live here, never on
// the page's main thread. The page talks to it with postMessage only:
//   page -> worker: {cmd: "boot", config}, {cmd: "train", options}, {cmd: "stop"},
//                   {cmd: "gradients", id, ids, seed, backend}, {cmd: "join", url, token, name},
//                   {cmd: "python", id, code} (runs code in a fresh namespace with runPythonAsync and
//                   replies with the value of its last expression: for tests and benchmarks)
//   worker -> page: {type: "status", stage, text}, {type: "boot", stage, seconds},
//                   {type: "ready", times}, {type: "backend", backend, why},
//                   {type: "error", stage, message, detail}, {type: "reply", id, result | error},
//                   and what sukiyaki.web.runtime posts (progress, validation, stopped, worker).
"use strict";

let pyodide = null;
let runtime = null;
let session = null;   // the Python TrainSession while training
let busy = null;      // "training" or "worker" while one runs

const post = (msg) => self.postMessage(msg);

function fail(stage, err) {
  const text = (err && err.message) ? err.message : String(err);
  // a Python traceback: its exception line ("module.SomeError: what happened", the last such
  // line: a message may go on over more lines, e.g. a shader's log) says what happened; the
  // whole text goes along as detail
  const lines = text.trim().split("\n");
  let head = lines[lines.length - 1];
  if (lines[0].startsWith("Traceback")) {
    for (const line of lines) if (/^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt): /.test(line)) head = line;
  }
  post({type: "error", stage, message: head, detail: lines.length > 1 ? text : ""});
}

async function timed(stage, text, fn) {
  post({type: "status", stage, text});
  const t0 = performance.now();
  try {
    await fn();
  } catch (err) {
    err.stage = err.stage || stage;
    throw err;
  }
  const seconds = (performance.now() - t0) / 1000;
  post({type: "boot", stage, seconds});
  return seconds;
}

async function boot(config) {
  const base = config.pyodide.endsWith("/") ? config.pyodide : config.pyodide + "/";
  const times = {};
  times.pyodide = await timed("pyodide", `loading Pyodide from ${base}`, async () => {
    try {
      importScripts(base + "pyodide.js");
    } catch (err) {
      throw new Error(`Pyodide could not be loaded from ${base}pyodide.js (${err.message || err}): ` +
                      "is the address reachable from this browser?");
    }
    try {
      pyodide = await loadPyodide({indexURL: base});
    } catch (err) {
      throw new Error(`Pyodide could not start from ${base} (${err.message || err})`);
    }
  });
  times.numpy = await timed("numpy", "loading numpy", async () => {
    await pyodide.loadPackage("numpy", {messageCallback: () => {}, errorCallback: (m) => console.warn(m)});
    try {
      pyodide.runPython("import numpy");
    } catch (err) {
      throw new Error(`numpy could not be loaded from ${base} (${err.message.trim().split("\n").pop()})`);
    }
  });
  times.wheel = await timed("wheel", `installing ${config.wheel_name}`, async () => {
    let data;
    try {
      const resp = await fetch(config.wheel);
      if (!resp.ok) throw new Error(`HTTP ${resp.status} ${resp.statusText}`.trim());
      data = new Uint8Array(await resp.arrayBuffer());
    } catch (err) {
      throw new Error(`the sukiyaki wheel could not be downloaded from ${config.wheel} (${err.message || err})`);
    }
    await pyodide.loadPackage("micropip", {messageCallback: () => {}, errorCallback: (m) => console.warn(m)});
    const path = `/tmp/${config.wheel_name}`;  // micropip installs it from Pyodide's file system
    pyodide.FS.writeFile(path, data);
    const micropip = pyodide.pyimport("micropip");
    try {
      await micropip.install.callKwargs(`emfs:${path}`, {deps: false});
    } catch (err) {
      throw new Error(`the sukiyaki wheel could not be installed (${err.message.trim().split("\n").pop()})`);
    } finally {
      micropip.destroy();
    }
    runtime = pyodide.pyimport("sukiyaki.web.runtime");
  });
  // WebGPU's calls are awaited from Python with run_sync (JSPI), which needs Python entered
  // asynchronously: select_backend is a coroutine, gradients goes through callPromising
  const hasGPU = typeof navigator !== "undefined" && !!navigator.gpu;
  times.backend = await timed("backend", `choosing the backend (${config.backend || "auto"})`, async () => {
    const choice = await runtime.select_backend(hasGPU, config.backend || "auto");
    const c = choice.toJs({dict_converter: Object.fromEntries});
    choice.destroy();
    post({type: "backend", backend: c.backend, why: c.why, detail: c.detail});
  });
  post({type: "ready", times});
}

async function train(options) {
  if (busy) throw new Error("training already runs");
  busy = "training";
  session = runtime.TrainSession(runtime.js_poster(post), options.net || "lenet", options.batch_size || 64,
                                 options.seed || 0, options.val_every ?? 100, options.iterations ?? null,
                                 options.backend || null);
  try {
    await session.run();  // awaiting a PyProxy releases it
  } finally {
    const done = session;
    session = null;
    busy = null;
    done.destroy();
  }
}

async function join(msg) {
  if (busy) throw new Error("the worker already runs");
  busy = "worker";
  try {
    // an asyncio Task (awaiting its proxy releases it; the page's Leave cancels it through runtime.stop_worker)
    await runtime.start_worker(runtime.js_poster(post), msg.url, msg.token, msg.name || "browser",
                               msg.device || "browser", msg.max_batch || 64);
  } finally {
    busy = null;
  }
}

async function reply(id, fn) {
  try {
    const result = await fn();
    post({type: "reply", id, result});
  } catch (err) {
    post({type: "reply", id, error: String(err.message || err)});
  }
}

// A Python value as a plain JavaScript one (dicts as objects); the proxy is released.
function plain(value) {
  if (value && typeof value.toJs === "function") {
    const js = value.toJs({dict_converter: Object.fromEntries});
    value.destroy();
    return js;
  }
  return value;
}

self.onmessage = async (event) => {
  const msg = event.data;
  switch (msg.cmd) {
    case "boot":
      try {
        await boot(msg.config);
      } catch (err) {
        fail(err.stage || "boot", err);
      }
      break;
    case "train":
      try {
        await train(msg.options || {});
      } catch (err) {
        fail("training", err);
      }
      break;
    case "stop":
      if (session) session.stop();
      else if (busy === "worker") runtime.stop_worker();
      break;
    case "join":
      try {
        await join(msg);
      } catch (err) {
        // a cancelled worker (the page's Stop) ends with CancelledError: not an error to show
        if (!String(err.message || err).includes("CancelledError")) fail("worker", err);
        post({type: "worker", event: "left"});
      }
      break;
    case "gradients":
      await reply(msg.id, async () => plain(await runtime.gradients.callPromising(
        msg.ids, msg.net || "lenet", msg.seed || 0, msg.iteration || 0, msg.backend || null)));
      break;
    case "python":
      await reply(msg.id, async () => {
        const globals = pyodide.globals.get("dict")();
        try {
          return plain(await pyodide.runPythonAsync(msg.code, {globals}));
        } finally {
          globals.destroy();
        }
      });
      break;
    default:
      post({type: "error", stage: "worker", message: `unknown command ${JSON.stringify(msg.cmd)}`, detail: ""});
  }
};

self.onunhandledrejection = (event) => fail("worker", event.reason);
