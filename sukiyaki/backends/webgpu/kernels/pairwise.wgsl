// ---- pairwise.wgsl: float32 sums of n strided elements with numpy's accuracy ----
// Blocks of 128 summed with eight accumulators (as numpy's pairwise_sum), the block sums
// combined by a binary tree (a stack of partial sums by level): the rounding error grows as
// log n, not n. Needs fn ld(e: u32) -> f32, the element loader of the kernel.

fn block_sum(base: u32, pre: u32, k0: u32, len: u32) -> f32 {
    if (len < 8u) {
        var s = 0.0f;
        for (var k = 0u; k < len; k = k + 1u) { s = s + ld(base + pre * (k0 + k)); }
        return s;
    }
    var ra = vec4<f32>(ld(base + pre * k0), ld(base + pre * (k0 + 1u)), ld(base + pre * (k0 + 2u)), ld(base + pre * (k0 + 3u)));
    var rb = vec4<f32>(ld(base + pre * (k0 + 4u)), ld(base + pre * (k0 + 5u)), ld(base + pre * (k0 + 6u)), ld(base + pre * (k0 + 7u)));
    var k = 8u;
    for (; k + 8u <= len; k = k + 8u) {
        let e = k0 + k;
        ra = ra + vec4<f32>(ld(base + pre * e), ld(base + pre * (e + 1u)), ld(base + pre * (e + 2u)), ld(base + pre * (e + 3u)));
        rb = rb + vec4<f32>(ld(base + pre * (e + 4u)), ld(base + pre * (e + 5u)), ld(base + pre * (e + 6u)), ld(base + pre * (e + 7u)));
    }
    var s = ((ra.x + ra.y) + (ra.z + ra.w)) + ((rb.x + rb.y) + (rb.z + rb.w));
    for (; k < len; k = k + 1u) { s = s + ld(base + pre * (k0 + k)); }
    return s;
}

fn pairwise_sum(base: u32, pre: u32, n: u32) -> f32 {
    if (n <= 128u) { return block_sum(base, pre, 0u, n); }
    var vals: array<f32, 32>;
    var levels: array<u32, 32>;
    var top = 0u;
    for (var k0 = 0u; k0 < n; k0 = k0 + 128u) {
        var s = block_sum(base, pre, k0, min(128u, n - k0));
        var lev = 0u;
        while (top > 0u && levels[top - 1u] == lev) {
            top = top - 1u;
            s = vals[top] + s;
            lev = lev + 1u;
        }
        vals[top] = s;
        levels[top] = lev;
        top = top + 1u;
    }
    var acc = vals[top - 1u];
    for (var i = top - 1u; i > 0u; i = i - 1u) { acc = vals[i - 1u] + acc; }
    return acc;
}
