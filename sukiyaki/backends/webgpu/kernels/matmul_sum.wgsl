// Split-K, the second step: C(i, j, z) (+)= sum over s of W(i, j, z, s), W the dense partial
// products of matmul_tiled.wgsl (i + M (j + N (z + Z s))), summed in the order of s (the same
// bits every run). One thread an element of C.
// Parameters: M, N, Z1, Z, S, c_si, c_sj, c_z1, c_z2, accumulate.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let M = m(0u);
    let MN = M * m(1u);
    let i = t % M;
    let j = (t % MN) / M;
    let z = t / MN;
    let z1 = z % m(2u);
    let z2 = z / m(2u);
    let stride = MN * m(3u);
    var acc = 0.0f;
    for (var s = 0u; s < m(4u); s = s + 1u) {
        acc = acc + bitcast<f32>(W[off(1u) + t + s * stride]);
    }
    let c = off(0u) + i * m(5u) + j * m(6u) + z1 * m(7u) + z2 * m(8u);
    if (m(9u) != 0u) { acc = bitcast<f32>(C[c]) + acc; }
    C[c] = bitcast<u32>(acc);
}
