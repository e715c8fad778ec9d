// 2-d max and average pooling of (h, w, c, n) column-major float32 blobs, one plane of H x W
// per (channel, sample); the kernels of sukiyaki/backends/cuda/kernels/pool.cu. Windows are
// read h-major (dh outer, dw inner) and the first maximum wins, as the numpy backend breaks
// ties; average pooling divides by the part of the window inside the padded input.
// Parameters: H, W, OH, OW, planes, kh, kw, sh, sw, ph, pw, keep. Bindings OUT0, OUT1, IN0,
// IN1 (a 4-byte scratch buffer where a step has fewer): max_fwd Y, CODE (when keep), X;
// max_bwd DX, -, DY, CODE; avg_fwd Y, -, X; avg_bwd DX, -, DY. One step a kernel.

fn pool_divisor(oh: i32, ow: i32) -> f32 {
    let a = mi(0u) + 2 * mi(9u) - oh * mi(7u);
    let b = mi(1u) + 2 * mi(10u) - ow * mi(8u);
    return f32(min(a, mi(5u)) * min(b, mi(6u)));
}

// (first, last) outputs whose window covers input i along one axis
fn pool_covering(i: i32, pad: i32, k: i32, s: i32, O: i32) -> vec2<i32> {
    let first = i + pad - k + 1;
    var lo = 0;
    if (first > 0) { lo = (first + s - 1) / s; }
    let hi = min((i + pad) / s, O - 1);
    return vec2<i32>(lo, hi);
}

fn max_fwd(t: u32) {
    let H = mi(0u);
    let W = mi(1u);
    let OH = mi(2u);
    let OW = mi(3u);
    let kh = mi(5u);
    let kw = mi(6u);
    let sh = mi(7u);
    let sw = mi(8u);
    let ph = mi(9u);
    let pw = mi(10u);
    let p = t / u32(OH * OW);
    let oh = i32(t % u32(OH));
    let ow = i32((t / u32(OH)) % u32(OW));
    let xb = off(2u) + p * u32(H * W);
    var best = 0.0f;
    var arg = 0;
    for (var dh = 0; dh < kh; dh = dh + 1) {
        let ih = oh * sh - ph + dh;
        for (var dw = 0; dw < kw; dw = dw + 1) {
            let iw = ow * sw - pw + dw;
            var v = -sk_inf();
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) { v = bitcast<f32>(IN0[xb + u32(ih + H * iw)]); }
            if ((dh == 0 && dw == 0) || v > best || (sk_isnan(v) && !sk_isnan(best))) {
                best = v;
                arg = dh * kw + dw;
            }
        }
    }
    OUT0[off(0u) + t] = bitcast<u32>(best);
    if (m(11u) != 0u) { OUT1[off(1u) + t] = bitcast<u32>(arg); }
}

fn max_bwd(t: u32) {
    let H = mi(0u);
    let W = mi(1u);
    let OH = mi(2u);
    let OW = mi(3u);
    let kh = mi(5u);
    let kw = mi(6u);
    let sh = mi(7u);
    let sw = mi(8u);
    let ph = mi(9u);
    let pw = mi(10u);
    let ih = i32(t % u32(H));
    let iw = i32((t / u32(H)) % u32(W));
    let p = t / u32(H * W);
    let ch = pool_covering(ih, ph, kh, sh, OH);
    let cw = pool_covering(iw, pw, kw, sw, OW);
    var acc = 0.0f;
    for (var ow = cw.x; ow <= cw.y; ow = ow + 1) {
        let dw = iw + pw - ow * sw;
        for (var oh = ch.x; oh <= ch.y; oh = oh + 1) {
            let dh = ih + ph - oh * sh;
            let o = u32(oh + OH * ow) + u32(OH * OW) * p;
            if (bitcast<i32>(IN1[off(3u) + o]) == dh * kw + dw) { acc = acc + bitcast<f32>(IN0[off(2u) + o]); }
        }
    }
    OUT0[off(0u) + t] = bitcast<u32>(acc);
}

fn avg_fwd(t: u32) {
    let H = mi(0u);
    let W = mi(1u);
    let OH = mi(2u);
    let OW = mi(3u);
    let kh = mi(5u);
    let kw = mi(6u);
    let sh = mi(7u);
    let sw = mi(8u);
    let ph = mi(9u);
    let pw = mi(10u);
    let p = t / u32(OH * OW);
    let oh = i32(t % u32(OH));
    let ow = i32((t / u32(OH)) % u32(OW));
    let xb = off(2u) + p * u32(H * W);
    var acc = 0.0f;
    for (var dh = 0; dh < kh; dh = dh + 1) {
        let ih = oh * sh - ph + dh;
        for (var dw = 0; dw < kw; dw = dw + 1) {
            let iw = ow * sw - pw + dw;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) { acc = acc + bitcast<f32>(IN0[xb + u32(ih + H * iw)]); }
        }
    }
    OUT0[off(0u) + t] = bitcast<u32>(acc / pool_divisor(oh, ow));
}

fn avg_bwd(t: u32) {
    let H = mi(0u);
    let W = mi(1u);
    let OH = mi(2u);
    let OW = mi(3u);
    let kh = mi(5u);
    let kw = mi(6u);
    let sh = mi(7u);
    let sw = mi(8u);
    let ph = mi(9u);
    let pw = mi(10u);
    let ih = i32(t % u32(H));
    let iw = i32((t / u32(H)) % u32(W));
    let p = t / u32(H * W);
    let ch = pool_covering(ih, ph, kh, sh, OH);
    let cw = pool_covering(iw, pw, kw, sw, OW);
    var acc = 0.0f;
    for (var ow = cw.x; ow <= cw.y; ow = ow + 1) {
        for (var oh = ch.x; oh <= ch.y; oh = oh + 1) {
            let o = u32(oh + OH * ow) + u32(OH * OW) * p;
            acc = acc + bitcast<f32>(IN0[off(2u) + o]) / pool_divisor(oh, ow);
        }
    }
    OUT0[off(0u) + t] = bitcast<u32>(acc);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_id(wid, nwg, lid);
    if (t >= META[0]) { return; }
    $STEP(t);
}
