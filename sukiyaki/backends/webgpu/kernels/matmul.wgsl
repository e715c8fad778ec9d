// Strided, batched matrix product in float32: C(i, j) (+)= sum_k A(i, k) B(k, j). Each
// thread computes a 4 x 4 block of C in registers, reading A and B through the caches (no
// workgroup memory, no barriers: Mesa's lavapipe runs barriers slowly, and GPUs do well on
// register blocks too). Addresses (elements), with the contraction k = kr + kd kb split in
// two strided axes and the batch z = z1 + Z1 z2 (workgroup z):
//   A(i, k) = i a_si + kr a_sk + kb a_sb + z1 a_z1 + z2 a_z2
//   B(k, j) = j b_sj + kr b_sk + kb b_sb + z1 b_z1 + z2 b_z2
//   C(i, j) = i c_si + j c_sj + z1 c_z1 + z2 c_z2
// (a convolution's weight gradient sums over positions and samples at once).
// Parameters: M, N, K, Z1, kd, a_si, a_sk, a_sb, a_z1, a_z2, b_sj, b_sk, b_sb, b_z1, b_z2,
// c_si, c_sj, c_z1, c_z2, accumulate.
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let M = m(0u);
    let N = m(1u);
    let K = m(2u);
    let i0 = (wid.x * 8u + lid.x) * 4u;
    let j0 = (wid.y * 8u + lid.y) * 4u;
    if (i0 >= M || j0 >= N) { return; }
    let z1 = wid.z % m(3u);
    let z2 = wid.z / m(3u);
    let kd = m(4u);
    let a_si = m(5u);
    let a_sk = m(6u);
    let a_sb = m(7u);
    let b_sj = m(10u);
    let b_sk = m(11u);
    let b_sb = m(12u);
    let abase = off(1u) + z1 * m(8u) + z2 * m(9u);
    let bbase = off(2u) + z1 * m(13u) + z2 * m(14u);
    // rows and columns past the edge read the last one (their results are not stored)
    let ra = vec4<u32>(min(i0, M - 1u), min(i0 + 1u, M - 1u), min(i0 + 2u, M - 1u), min(i0 + 3u, M - 1u)) * a_si + abase;
    let cb = vec4<u32>(min(j0, N - 1u), min(j0 + 1u, N - 1u), min(j0 + 2u, N - 1u), min(j0 + 3u, N - 1u)) * b_sj + bbase;
    var acc0 = vec4<f32>(0.0f);
    var acc1 = vec4<f32>(0.0f);
    var acc2 = vec4<f32>(0.0f);
    var acc3 = vec4<f32>(0.0f);
    for (var k0 = 0u; k0 < K; k0 = k0 + kd) {
        let kb = k0 / kd;
        let klen = min(kd, K - k0);
        var pa = ra + vec4<u32>(kb * a_sb);
        var pb = cb + vec4<u32>(kb * b_sb);
        for (var kr = 0u; kr < klen; kr = kr + 1u) {
            let a = vec4<f32>(bitcast<f32>(A[pa.x]), bitcast<f32>(A[pa.y]), bitcast<f32>(A[pa.z]), bitcast<f32>(A[pa.w]));
            acc0 = acc0 + a * bitcast<f32>(B[pb.x]);
            acc1 = acc1 + a * bitcast<f32>(B[pb.y]);
            acc2 = acc2 + a * bitcast<f32>(B[pb.z]);
            acc3 = acc3 + a * bitcast<f32>(B[pb.w]);
            pa = pa + vec4<u32>(a_sk);
            pb = pb + vec4<u32>(b_sk);
        }
    }
    let acc = mat4x4<f32>(acc0, acc1, acc2, acc3);
    let cbase = off(0u) + z1 * m(17u) + z2 * m(18u);
    let add = m(19u) != 0u;
    for (var jj = 0u; jj < 4u; jj = jj + 1u) {
        if (j0 + jj >= N) { break; }
        for (var ii = 0u; ii < 4u; ii = ii + 1u) {
            if (i0 + ii >= M) { break; }
            let c = cbase + (i0 + ii) * m(15u) + (j0 + jj) * m(16u);
            var v = acc[jj][ii];
            if (add) { v = bitcast<f32>(C[c]) + v; }
            C[c] = bitcast<u32>(v);
        }
    }
}
