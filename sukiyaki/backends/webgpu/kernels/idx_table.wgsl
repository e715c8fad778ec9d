// An index array (int64: its low word; int32 as is) as a segment of an offset table:
// T[seg + j] = index[j] * stride. Parameters: words per index, seg, stride. Bindings T, IDX.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    let words = m(0u);
    let v = bitcast<i32>(IDX[off(1u) + t * words]);
    T[off(0u) + m(1u) + t] = bitcast<u32>(v * mi(2u));
}
