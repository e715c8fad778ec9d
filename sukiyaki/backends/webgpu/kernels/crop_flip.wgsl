// Per-sample crops of (H, W, C, n) images at corners (TOP[j], LEFT[j]), mirrored left-right
// where FLIP[j]: OUT (OH, OW, C, n) column-major. Parameters: H, W, C, OH, OW.
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
    let oy = t % OH;
    let ox = (t / OH) % OW;
    let c = (t / (OH * OW)) % C;
    let j = t / (OH * OW * C);
    let top = TOP[off(2u) + j];
    var sx = LEFT[off(3u) + j];
    if (FLIP[off(4u) + j] != 0u) { sx = sx + OW - 1u - ox; } else { sx = sx + ox; }
    OUT[off(0u) + t] = X[off(1u) + (top + oy) + H * (sx + W * (c + C * j))];
}
