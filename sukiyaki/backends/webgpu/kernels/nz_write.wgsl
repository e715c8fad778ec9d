// nonzero_linear, step 3: each chunk writes the int64 indices of its nonzero elements from its
// offset on. Parameters: n. Bindings OUT, X, COUNTS.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let n = m(0u);
    let lo = t * $CHUNKu;
    let hi = min(n, lo + $CHUNKu);
    var p = COUNTS[off(2u) + t];
    for (var e = lo; e < hi; e = e + 1u) {
        if ($TRUTH) {
            OUT[off(0u) + 2u * p] = e;
            OUT[off(0u) + 2u * p + 1u] = 0u;
            p = p + 1u;
        }
    }
}
