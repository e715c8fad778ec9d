// The backend's own random stream (rand, randn, randint): element t of call number c is made
// from Philox4x32-10 of counter (t, c_lo, c_hi, 0x5EED) under the seed's key.
// Parameters: k0, k1, c_lo, c_hi, low (int), span (high - low + 1, 0 meaning 2^32).

fn rnd_words(t: u32) -> vec4<u32> {
    return philox4x32(vec4<u32>(t, m(2u), m(3u), 0x5EEDu), m(0u), m(1u));
}

// uniform in [0, 1)
fn rnd_uniform(t: u32) -> f32 {
    return philox_uniform01(rnd_words(t).x);
}

// standard normal (Box-Muller)
fn rnd_normal(t: u32) -> f32 {
    let w = rnd_words(t);
    let u1 = (f32(w.x >> 8u) + 1.0f) * 5.9604644775390625e-08f;  // (0, 1]
    let u2 = philox_uniform01(w.y);
    return sqrt(-2.0f * sk_log(u1)) * sk_cos(6.283185307179586f * u2);
}

// integers in [low, low + span)
fn rnd_integer(t: u32) -> i32 {
    let span = m(5u);
    var r = rnd_words(t).x;
    if (span != 0u) { r = mul32_wide(r, span).y; }
    return bitcast<i32>(m(4u) + r);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let v = rnd_$MODE(t);
    $STORE
}
