// Data movement by offset tables: for each multi-index j of an iteration shape (column-major),
// dst position d = sum_k T[dseg_k + j_k] and src position s = sum_k T[sseg_k + j_k] (element
// offsets, signed). The last statement moves the element (converting its dtype), or, for
// scatters where the last writer must win, marks the destination (atomicMax of t + 1) or
// writes only if t won. Parameters: nd, shape[nd], sseg[nd], dseg[nd]. T is the binding after SRC.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let nd = m(0u);
    var rem = t;
    var s: i32 = 0;
    var d: i32 = 0;
    for (var k = 0u; k < nd; k = k + 1u) {
        let sh = m(1u + k);
        let j = rem % sh;
        rem = rem / sh;
        s = s + bitcast<i32>(T[off($TBu) + m(1u + nd + k) + j]);
        d = d + bitcast<i32>(T[off($TBu) + m(1u + 2u * nd + k) + j]);
    }
    $FINISH
}
