// nonzero_linear, step 2: exclusive prefix sum of the counts in place (one thread), the total
// after them. Parameters: number of chunks. Bindings COUNTS.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let nb = m(0u);
    var acc = 0u;
    for (var b = 0u; b < nb; b = b + 1u) {
        let c = COUNTS[b];
        COUNTS[b] = acc;
        acc = acc + c;
    }
    COUNTS[nb] = acc;
}
