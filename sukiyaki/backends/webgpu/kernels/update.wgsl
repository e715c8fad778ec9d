// Fused optimizer updates over a flat float32 parameter buffer, one thread an element: the
// arithmetic of sukiyaki/backends/numpy/update.py step by step, so the same roundings (a
// device that contracted a * b + c into one fma would differ in the last bit; Mesa's
// lavapipe does not). Bindings: W, V, M (read-write; a 4-byte scratch buffer where a rule
// has no such state), G. Parameters (float32 bits): -lr, wd, then
//   momentum: momentum; adam: b1, b2, 1 - b1, 1 - b2, eps.

fn decayed(w: f32, g: f32, wd: f32) -> f32 {
    if (wd != 0.0f) { return g + w * wd; }
    return g;
}

fn sgd_step(t: u32) {
    let iw = off(0u) + t;
    let w = bitcast<f32>(W[iw]);
    let g = bitcast<f32>(G[off(3u) + t]);
    W[iw] = bitcast<u32>(w + decayed(w, g, mf(1u)) * mf(0u));
}

fn momentum_step(t: u32) {
    let iw = off(0u) + t;
    let iv = off(1u) + t;
    let w = bitcast<f32>(W[iw]);
    let g = bitcast<f32>(G[off(3u) + t]);
    let step = decayed(w, g, mf(1u)) * mf(0u);
    let v = bitcast<f32>(V[iv]) * mf(2u) + step;
    V[iv] = bitcast<u32>(v);
    W[iw] = bitcast<u32>(w + v);
}

fn adam_step(t: u32) {
    let iw = off(0u) + t;
    let iv = off(1u) + t;
    let im = off(2u) + t;
    let w = bitcast<f32>(W[iw]);
    let g = bitcast<f32>(G[off(3u) + t]);
    let gd = decayed(w, g, mf(1u));
    let mm = bitcast<f32>(M[im]) * mf(2u) + gd * mf(4u);
    let vv = bitcast<f32>(V[iv]) * mf(3u) + (gd * gd) * mf(5u);
    M[im] = bitcast<u32>(mm);
    V[iv] = bitcast<u32>(vv);
    let u = mm / (sqrt(vv) + mf(6u));
    W[iw] = bitcast<u32>(w + u * mf(0u));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    $STEP(t);
}
