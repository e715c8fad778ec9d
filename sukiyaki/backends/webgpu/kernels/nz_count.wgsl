// nonzero_linear, step 1: nonzero elements of X per chunk (one thread a chunk); the chunk size
// and the truth of element e of X are substituted. Parameters: n. Bindings COUNTS, X.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let n = m(0u);
    let lo = t * $CHUNKu;
    let hi = min(n, lo + $CHUNKu);
    var c = 0u;
    for (var e = lo; e < hi; e = e + 1u) {
        if ($TRUTH) { c = c + 1u; }
    }
    COUNTS[t] = c;
}
