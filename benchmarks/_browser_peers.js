// The peers of benchmarks/browser_speed.py, on the page's main thread (as their own examples run):
// LeNet as sukiyaki/nets/lenet.json (conv 5x5x20, max pool 2/2, conv 5x5x50, max pool 2/2, fc 500 +
// ReLU, fc 10, softmax cross-entropy), batch 64, momentum SGD (lr 0.01, momentum 0.9, no decay), on
// the same bundled MNIST digits (served by the benchmark as /bench/mnist.bin).
//   await peer.setup(lib, backend)  lib "convnetjs" or "tfjs"; backend (tfjs) "cpu", "webgl", "wasm", "webgpu"
//   await peer.window(seconds)      trains batches for at least that long: {images, seconds, loss}
"use strict";

window.peer = (() => {
  const BATCH = 64;
  let data = null;   // {n, labels: Uint8Array, images: Float32Array (n * 784, pixels / 256)}
  let step = null;   // async function(i): trains batch i, returns its loss (a number)
  let iteration = 0;

  async function loadData() {
    const resp = await fetch("/bench/mnist.bin");
    if (!resp.ok) throw new Error(`/bench/mnist.bin: HTTP ${resp.status}`);
    const buf = new Uint8Array(await resp.arrayBuffer());
    const n = new DataView(buf.buffer).getUint32(0, true);  // n, then n labels, then n * 784 pixels
    const images = new Float32Array(n * 784);
    for (let i = 0; i < n * 784; i++) images[i] = buf[4 + n + i] / 256;
    return {n, labels: buf.slice(4, 4 + n), images};
  }

  const first = (i) => (i * BATCH) % (data.n - BATCH + 1);  // the batch's first sample

  function convnetjsSetup() {
    const cj = window.convnetjs;
    const net = new cj.Net();
    net.makeLayers([
      {type: "input", out_sx: 28, out_sy: 28, out_depth: 1},
      {type: "conv", sx: 5, filters: 20, stride: 1, pad: 0},  // no activation, as lenet.json
      {type: "pool", sx: 2, stride: 2},
      {type: "conv", sx: 5, filters: 50, stride: 1, pad: 0},
      {type: "pool", sx: 2, stride: 2},
      {type: "fc", num_neurons: 500, activation: "relu"},
      {type: "softmax", num_classes: 10},                      // ConvNetJS adds the fc 10 before it
    ]);
    const trainer = new cj.Trainer(net, {method: "sgd", learning_rate: 0.01, momentum: 0.9, batch_size: BATCH,
                                         l2_decay: 0});
    const vols = [];
    for (let s = 0; s < data.n; s++) {
      const v = new cj.Vol(28, 28, 1, 0.0);
      v.w.set(data.images.subarray(s * 784, (s + 1) * 784));  // (y * 28 + x): row-major, as served
      vols.push(v);
    }
    step = async (i) => {  // ConvNetJS takes one sample at a time and updates every batch_size samples
      const lo = first(i);
      let loss = 0;
      for (let s = lo; s < lo + BATCH; s++) loss += trainer.train(vols[s], data.labels[s]).loss;
      return loss / BATCH;
    };
    return {version: "convnetjs 0.3.0 (npm)", backend: "JavaScript (main thread)"};
  }

  async function tfjsSetup(backend) {
    const tf = window.tf;
    if (backend === "wasm") {
      if (!tf.wasm) throw new Error("the wasm backend's script did not load");
      tf.wasm.setWasmPaths("/bench/lib/");
    }
    let ok;
    try {
      ok = await tf.setBackend(backend);
    } catch (err) {
      throw new Error(`tf.setBackend('${backend}') failed: ${err.message || err}`);
    }
    if (!ok || tf.getBackend() !== backend) throw new Error(`tf.setBackend('${backend}') gave ${tf.getBackend()}`);
    await tf.ready();
    let detail = "";
    if (backend === "webgl") {
      const gl = tf.backend().gpgpu && tf.backend().gpgpu.gl;
      const ext = gl && gl.getExtension("WEBGL_debug_renderer_info");
      detail = ext ? `; renderer ${gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)}` : "";
    } else if (backend === "webgpu") {
      const ai = tf.backend().adapterInfo || {};
      detail = `; adapter ${[ai.vendor, ai.architecture].filter(Boolean).join(" ") || "(no details)"}`;
    } else if (backend === "wasm") {
      const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
      const threads = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
      detail = `; SIMD ${simd ? "on" : "off"}, threads ${threads ? "on" : "off (the page is not cross-origin isolated)"}`;
    }
    const model = tf.sequential({layers: [
      tf.layers.conv2d({inputShape: [28, 28, 1], kernelSize: 5, filters: 20, strides: 1, padding: "valid"}),
      tf.layers.maxPooling2d({poolSize: 2, strides: 2}),
      tf.layers.conv2d({kernelSize: 5, filters: 50, strides: 1, padding: "valid"}),
      tf.layers.maxPooling2d({poolSize: 2, strides: 2}),
      tf.layers.flatten(),
      tf.layers.dense({units: 500, activation: "relu"}),
      tf.layers.dense({units: 10}),
    ]});
    const opt = tf.train.momentum(0.01, 0.9);
    const labels = Int32Array.from(data.labels);
    step = async (i) => {
      const lo = first(i);
      const cost = tf.tidy(() => {
        const x = tf.tensor4d(data.images.subarray(lo * 784, (lo + BATCH) * 784), [BATCH, 28, 28, 1]);
        const y = tf.oneHot(tf.tensor1d(labels.subarray(lo, lo + BATCH), "int32"), 10);
        return opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, {training: true})), true);
      });
      const value = (await cost.data())[0];  // read every step, as the runtime reads its loss
      cost.dispose();
      return value;
    };
    return {version: `TensorFlow.js ${tf.version.tfjs} (npm)`, backend: backend + detail};
  }

  async function setup(lib, backend) {
    data = data || await loadData();
    iteration = 0;
    const info = lib === "convnetjs" ? convnetjsSetup() : await tfjsSetup(backend);
    const loss = await step(iteration++);  // one batch: kernels compiled, memory allocated, before any timing
    if (!isFinite(loss)) throw new Error(`the first batch's loss is ${loss}`);
    return Object.assign(info, {samples: data.n, first_loss: loss});
  }

  async function window_(seconds) {
    let images = 0, loss = NaN;
    const t0 = performance.now();
    do {
      loss = await step(iteration++);
      images += BATCH;
    } while (performance.now() - t0 < seconds * 1000 || images < 2 * BATCH);
    return {images, seconds: (performance.now() - t0) / 1000, loss};
  }

  return {setup, window: window_};
})();
