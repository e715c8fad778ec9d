// The adjoint of im2col: DX (H, W, C, samples n0 .. n0 + nc) from DCOLS (P x K per sample):
// each input element sums the columns that read it (a gather: no atomics, fixed order).
// Parameters: H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, n0.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let H = m(0u);
    let W = m(1u);
    let C = m(2u);
    let OH = mi(3u);
    let OW = mi(4u);
    let KH = mi(5u);
    let KW = mi(6u);
    let sh = mi(7u);
    let sw = mi(8u);
    let P = u32(OH * OW);
    let K = u32(KH * KW) * C;
    let h = i32(t % H);
    let w = i32((t / H) % W);
    let c = (t / (H * W)) % C;
    let ns = t / (H * W * C);
    let base = P * K * ns + P * u32(KH * KW) * c;
    var acc = 0.0f;
    for (var kw = 0; kw < KW; kw = kw + 1) {
        let a = w + mi(10u) - kw;
        if (a < 0 || a % sw != 0 || a / sw >= OW) { continue; }
        let ow = a / sw;
        for (var kh = 0; kh < KH; kh = kh + 1) {
            let b = h + mi(9u) - kh;
            if (b < 0 || b % sh != 0 || b / sh >= OH) { continue; }
            let oh = b / sh;
            acc = acc + bitcast<f32>(DCOLS[off(1u) + base + u32(oh + OH * ow) + P * u32(kh + KH * kw)]);
        }
    }
    DX[off(0u) + t] = bitcast<u32>(acc);
}
