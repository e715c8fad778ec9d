// Lowering for convolution: COLS (P x K per sample, column-major; P = OH * OW positions,
// K = KH * KW * C, k = kh + KH (kw + KW c)) of the samples n0 .. n0 + nc of X (H, W, C, N).
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
    let k = r % K;
    let ns = r / K;
    let kh = k % KH;
    let kw = (k / KH) % KW;
    let c = k / (KH * KW);
    let ih = i32((p % OH) * m(7u) + kh) - mi(9u);
    let iw = i32((p / OH) * m(8u) + kw) - mi(10u);
    var v = 0u;
    if (ih >= 0 && ih < i32(H) && iw >= 0 && iw < i32(W)) {
        v = X[off(1u) + u32(ih) + H * (u32(iw) + W * (c + C * (m(11u) + ns)))];
    }
    COLS[off(0u) + t] = v;
}
