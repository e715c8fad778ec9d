// The adjoint of im2col: DX (H, W, C, samples n0 .. n0 + nc) from DCOLS (P x K per sample):
// each input element sums the columns that read it (a gather: no atomics, fixed order: kw
// ascending, then kh ascending). The window positions that read (h, w) are those with
// kw = (w + pw) mod sw, then every sw-th: found by one division, then stepped.
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
    let hw = t % (H * W);
    let r = t / (H * W);
    let h = i32(hw % H);
    let w = i32(hw / H);
    let c = r % C;
    let ns = r / C;
    let base = off(1u) + P * K * ns + P * u32(KH * KW) * c;
    // a = w + pw - kw = sw * ow: kw from (w + pw) mod sw in steps of sw, ow down by one a step
    let aw = w + mi(10u);
    let bh = h + mi(9u);
    let kw0 = aw % sw;
    let ow0 = aw / sw;
    let kh0 = bh % sh;
    let oh0 = bh / sh;
    var acc = 0.0f;
    var ow = ow0;
    for (var kw = kw0; kw < KW && ow >= 0; kw = kw + sw) {
        if (ow < OW) {
            var oh = oh0;
            for (var kh = kh0; kh < KH && oh >= 0; kh = kh + sh) {
                if (oh < OH) {
                    acc = acc + bitcast<f32>(DCOLS[base + u32(oh + OH * ow) + P * u32(kh + KH * kw)]);
                }
                oh = oh - 1;
            }
        }
        ow = ow - 1;
    }
    DX[off(0u) + t] = bitcast<u32>(acc);
}
