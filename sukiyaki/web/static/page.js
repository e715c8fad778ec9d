// The sukiyaki runtime page (main thread): starts the Web Worker, sends it commands, draws what it
// posts. No Python runs here. Modes (from the server's config): "train" (LeNet in the tab) and
// "worker" (a distributed worker of the coordinator that served the page).
// Query options: train: ?iterations=N&val_every=N&batch=N&autostart=0; both: &boot_timeout=SECONDS,
// &backend=auto|webgpu|numpy (auto: WebGPU when the browser gives a working adapter, else numpy);
// worker: the join token as #token=T (never sent to a server) or ?token=T.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const $ = (id) => document.getElementById(id);
  const formats = [0, 1, 2, 3, 4].map((d) => new Intl.NumberFormat("en-US", {minimumFractionDigits: d,
                                                                             maximumFractionDigits: d}));
  const fmt = (x, digits) => (x === undefined || x === null || !isFinite(x)) ? "–" : formats[digits].format(x);
  const state = {mode: config.mode, stage: "boot", boot: {}, ready: false, backend: null, why: null, progress: [],
                 validation: [], errors: [], worker: {}, events: []};
  const pending = new Map();
  let nextId = 1;

  function setStatus(text) { $("status").textContent = text; }

  function showError(stage, message, detail) {
    state.errors.push({stage, message, detail});
    const box = $("error");
    box.textContent = "";
    const head = document.createElement("strong");
    head.textContent = `Error (${stage}): `;
    box.append(head, document.createTextNode(message));
    if (detail) {
      const pre = document.createElement("pre");
      pre.textContent = detail;
      box.append(pre);
    }
    box.style.display = "block";
    setStatus(`error: ${stage}`);
  }

  function clearError() { $("error").style.display = "none"; $("error").textContent = ""; }

  // ------------------------------------------------------------------ the Web Worker
  const worker = new Worker(config.worker_script);
  worker.onerror = (event) => {
    event.preventDefault();
    showError("worker", event.message || "the Web Worker failed to start", "");
    stopWatchdog();
  };

  // boot watchdog: a stage that makes no progress is reported, never a page that waits forever
  const bootTimeout = Number(query.get("boot_timeout") || config.boot_timeout || 180) * 1000;
  let watchdog = null;
  function armWatchdog(stage) {
    stopWatchdog();
    watchdog = setTimeout(() => showError(stage, `no progress after ${bootTimeout / 1000} s while ${$("status").textContent}`
                                          + " (is the Pyodide address reachable?)", ""), bootTimeout);
  }
  function stopWatchdog() { if (watchdog) clearTimeout(watchdog); watchdog = null; }

  const handlers = {
    status(m) { state.stage = m.stage; setStatus(m.text); armWatchdog(m.stage); },
    boot(m) { state.boot[m.stage] = m.seconds; $(`boot-${m.stage}`).textContent = fmt(m.seconds, 2); },
    backend(m) {
      state.backend = m.backend; state.why = m.why; state.backendDetail = m.detail || "";
      $("backend").textContent = m.why;
      $("backend-detail").textContent = m.detail || "";
      $("backend-detail").style.display = m.detail ? "block" : "none";
    },
    ready(m) {
      stopWatchdog();
      state.ready = true;
      if (config.mode === "train") readyToTrain(); else readyToJoin();
    },
    error(m) { stopWatchdog(); showError(m.stage, m.message, m.detail); afterError(m.stage); },
    reply(m) {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error)); else p.resolve(m.result);
    },
    progress(m) {
      state.progress.push({iteration: m.iteration, loss: m.loss, images_per_s: m.images_per_s, seconds: m.seconds,
                           backend: m.backend});
      if (state.progress.length > 10000) state.progress.shift();
      if (state.boot.first === undefined) {
        state.boot.first = m.first_gradient_s;
        $("boot-first").textContent = fmt(m.first_gradient_s, 2);
      }
      $("iteration").textContent = m.iteration;
      $("loss").textContent = fmt(m.loss, 4);
      $("images-per-s").textContent = fmt(m.images_per_s, 1);
      setStatus("training");
    },
    validation(m) {
      state.validation.push(m);
      $("accuracy").textContent = `${fmt(100 * m.accuracy, 1)}% (${m.images} test digits, iteration ${m.iteration})`;
    },
    stopped(m) {
      setStatus(`stopped at iteration ${m.iteration} (${m.reason})`);
      $("stop").disabled = true;
      $("start").disabled = false;
    },
    worker(m) { workerEvent(m); },
  };

  worker.onmessage = (event) => {
    const m = event.data;
    const h = handlers[m.type];
    if (h) h(m);
  };

  function send(cmd, payload) { worker.postMessage(Object.assign({cmd}, payload || {})); }

  // A request to the Web Worker answered by a "reply" message (used by the tests and benchmarks).
  function request(cmd, payload) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, {resolve, reject});
      send(cmd, Object.assign({id}, payload || {}));
    });
  }

  function afterError(stage) {
    if (config.mode === "train") {
      $("stop").disabled = true;
      $("start").disabled = !state.ready;
    } else {
      $("join").disabled = !state.ready;
      $("leave").disabled = true;
    }
  }

  // ------------------------------------------------------------------ training mode
  const trainOptions = {
    net: "lenet",
    batch_size: Number(query.get("batch") || 64),
    val_every: Number(query.get("val_every") ?? 100),
    iterations: query.get("iterations") ? Number(query.get("iterations")) : null,
    seed: Number(query.get("seed") || 0),
  };

  function startTraining() {
    clearError();
    state.progress = [];
    $("start").disabled = true;
    $("stop").disabled = false;
    setStatus("building the network");
    send("train", {options: trainOptions});
  }

  function readyToTrain() {
    $("batch").textContent = trainOptions.batch_size;
    $("start").disabled = false;
    setStatus("ready");
    if (query.get("autostart") !== "0") startTraining();
  }

  // ------------------------------------------------------------------ worker mode
  function readyToJoin() {
    $("join").disabled = false;
    setStatus("ready: type the join token");
    if ($("token").value) join();
  }

  function join() {
    const token = $("token").value;
    if (!token) { showError("join", "type the join token the coordinator printed", ""); return; }
    clearError();
    state.worker = {};
    $("join").disabled = true;
    $("leave").disabled = false;
    const ua = navigator.userAgentData && navigator.userAgentData.brands
      ? navigator.userAgentData.brands.map((b) => `${b.brand} ${b.version}`).filter((b) => !b.startsWith("Not")).join(", ")
      : navigator.userAgent;
    send("join", {url: location.origin, token, name: query.get("name") || `browser tab (${ua})`.slice(0, 64),
                  device: `browser (Pyodide, ${state.backend || "numpy"})`});
  }

  function workerEvent(m) {
    state.events.push(m);
    if (state.events.length > 1000) state.events.shift();
    const w = state.worker;
    switch (m.event) {
      case "connecting": setStatus(`connecting to ${m.url}`); break;
      case "joined":
        w.id = m.worker;
        clearError();
        $("worker-id").textContent = m.worker;
        setStatus("joined: waiting for work");
        break;
      case "task":
        w.tasks = m.tasks; w.samples = m.samples_total; w.samples_per_s = m.samples_per_s;
        $("tasks").textContent = m.tasks;
        $("samples").textContent = fmt(m.samples_total, 0);
        $("samples-per-s").textContent = fmt(m.samples_per_s, 1);
        setStatus(`working (iteration ${m.iteration})`);
        break;
      case "lost":
        showError("connection", `${m.reason}; reconnecting in ${fmt(m.retry_s, 1)} s`, "");
        setStatus(`reconnecting in ${fmt(m.retry_s, 1)} s`);
        break;
      case "refused":
        showError("coordinator", m.reason, "");
        setStatus("refused by the coordinator");
        $("join").disabled = false;
        $("leave").disabled = true;
        break;
      case "left":
        if (!$("status").textContent.startsWith("refused")) setStatus("left");
        $("join").disabled = false;
        $("leave").disabled = true;
        break;
    }
  }

  // ------------------------------------------------------------------ start
  if (config.mode === "train") {
    $("train-panel").classList.remove("hidden");
    $("start").onclick = startTraining;
    $("stop").onclick = () => { $("stop").disabled = true; setStatus("stopping"); send("stop"); };
  } else {
    $("worker-panel").classList.remove("hidden");
    $("subtitle").textContent = "A worker of the coordinator that served this page: Python (Pyodide) in a Web Worker.";
    $("coordinator").textContent = location.origin;
    $("token").value = fragment.get("token") || query.get("token") || "";
    $("join-form").onsubmit = (event) => { event.preventDefault(); join(); };
    $("leave").onclick = () => { $("leave").disabled = true; setStatus("leaving"); send("stop"); };
  }
  window.sukiyaki = {state, request, send};
  if (query.get("backend")) config.backend = query.get("backend");
  armWatchdog("boot");
  send("boot", {config});
})();
