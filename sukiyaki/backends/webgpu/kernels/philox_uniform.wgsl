// philox_uniform: OUT (per_sample, n) float32, column-major; element [e, j] is word e % 4 of
// the block (e / 4, IDS[j], iteration, 0) under key (k0, k1). One thread a block.
// Parameters: k0, k1, iteration, per_sample, n.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let per = m(3u);
    let blocks = (per + 3u) / 4u;
    let j = t / blocks;
    let b = t % blocks;
    let w = philox4x32(vec4<u32>(b, IDS[off(1u) + j], m(2u), 0u), m(0u), m(1u));
    let words = array<u32, 4>(w.x, w.y, w.z, w.w);
    for (var q = 0u; q < 4u; q = q + 1u) {
        let e = 4u * b + q;
        if (e < per) { OUT[off(0u) + e + per * j] = bitcast<u32>(philox_uniform01(words[q])); }
    }
}
