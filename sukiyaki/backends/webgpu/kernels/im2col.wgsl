// Lowering for convolution: COLS (P x K per sample, column-major; P = OH * OW positions,
// K = KH * KW * C, k = kh + KH (kw + KW c)) of the samples n0 .. n0 + nc of X (H, W, C, N).
// One invocation per (position, channel, sample), positions fastest: it writes the KH * KW
// values of its window (neighbouring invocations write neighbouring words), its indices
// found once by division and then stepped.
// Parameters: H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, n0.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let H = m(0u);
    let W = m(1u);
    let C = m(2u);
    let OH = m(3u);
    let OW = m(4u);
    let KH = m(5u);
    let KW = m(6u);
    let P = OH * OW;
    let K = KH * KW * C;
    let p = t % P;
    let r = t / P;
    let c = r % C;
    let ns = r / C;
    let oh = p % OH;
    let ih0 = i32(oh * m(7u)) - mi(9u);
    let iw0 = i32((p / OH) * m(8u)) - mi(10u);
    let src = off(1u) + H * W * (c + C * (m(11u) + ns));
    // column k of this invocation's first value: kh = kw = 0
    var dst = off(0u) + p + P * (KH * KW * c + K * ns);
    for (var kw = 0u; kw < KW; kw = kw + 1u) {
        let iw = iw0 + i32(kw);
        let col_ok = iw >= 0 && iw < i32(W);
        for (var kh = 0u; kh < KH; kh = kh + 1u) {
            let ih = ih0 + i32(kh);
            var v = 0u;
            if (col_ok && ih >= 0 && ih < i32(H)) {
                v = X[src + u32(ih) + H * u32(iw)];
            }
            COLS[dst] = v;
            dst = dst + P;
        }
    }
}
