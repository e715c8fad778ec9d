// ---- f64.wgsl: IEEE binary64 in software (WGSL has no f64) ----
// A double is vec2<u32>(low word, high word): numpy's float64 bytes, little-endian. The
// algorithms are those of Berkeley SoftFloat 2 (J. Hauser), round to nearest even, with
// subnormals: add, sub, mul and div are correctly rounded, so results are bit-equal to
// numpy's; fmod is exact, as C's; conversions round as numpy's casts do. 64-bit unsigned
// integers are vec2<u32> too (u64_*), and 32x32 -> 64-bit products are built from 16-bit
// halves (WGSL has no wide multiply).

const F64_NAN: vec2<u32> = vec2<u32>(0u, 0x7FF80000u);
// float32 NaN and Inf bits (a private variable: a constant expression may not be NaN, as WGSL says)
var<private> F64_QNAN32: u32 = 0x7FC00000u;
const F64_ONE: vec2<u32> = vec2<u32>(0u, 0x3FF00000u);
const F64_HALF: vec2<u32> = vec2<u32>(0u, 0x3FE00000u);

fn u64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn u64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn u64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn u64_is0(a: vec2<u32>) -> bool {
    return (a.x | a.y) == 0u;
}

fn u64_shl(a: vec2<u32>, n: u32) -> vec2<u32> {
    if (n == 0u) { return a; }
    if (n >= 64u) { return vec2<u32>(0u, 0u); }
    if (n >= 32u) { return vec2<u32>(0u, a.x << (n - 32u)); }
    return vec2<u32>(a.x << n, (a.y << n) | (a.x >> (32u - n)));
}

fn u64_shr(a: vec2<u32>, n: u32) -> vec2<u32> {
    if (n == 0u) { return a; }
    if (n >= 64u) { return vec2<u32>(0u, 0u); }
    if (n >= 32u) { return vec2<u32>(a.y >> (n - 32u), 0u); }
    return vec2<u32>((a.x >> n) | (a.y << (32u - n)), a.y >> n);
}

// shift right, OR-ing every bit shifted out into bit 0 (SoftFloat's shift64RightJamming)
fn u64_shr_jam(a: vec2<u32>, n: u32) -> vec2<u32> {
    if (n == 0u) { return a; }
    if (n >= 64u) { return vec2<u32>(select(0u, 1u, !u64_is0(a)), 0u); }
    let r = u64_shr(a, n);
    let back = u64_shl(r, n);
    let lost = back.x != a.x || back.y != a.y;
    return vec2<u32>(r.x | select(0u, 1u, lost), r.y);
}

fn u64_clz(a: vec2<u32>) -> u32 {
    if (a.y != 0u) { return countLeadingZeros(a.y); }
    return 32u + countLeadingZeros(a.x);
}

fn u64_neg(a: vec2<u32>) -> vec2<u32> {
    return u64_sub(vec2<u32>(0u, 0u), a);
}

// the 64-bit product of two u32
fn mul32_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    return vec2<u32>((p00 & 0xFFFFu) | (mid << 16u), p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}

// the 128-bit product of two u64, as four words, lowest first
fn u64_mul_wide(a: vec2<u32>, b: vec2<u32>) -> vec4<u32> {
    let p0 = mul32_wide(a.x, b.x);
    let p1 = mul32_wide(a.x, b.y);
    let p2 = mul32_wide(a.y, b.x);
    let p3 = mul32_wide(a.y, b.y);
    let s1 = p0.y + p1.x;
    var k1 = select(0u, 1u, s1 < p0.y);
    let w1 = s1 + p2.x;
    k1 = k1 + select(0u, 1u, w1 < s1);
    let s2 = p1.y + p2.y;
    var k2 = select(0u, 1u, s2 < p1.y);
    let s3 = s2 + p3.x;
    k2 = k2 + select(0u, 1u, s3 < s2);
    let w2 = s3 + k1;
    k2 = k2 + select(0u, 1u, w2 < s3);
    return vec4<u32>(p0.x, w1, w2, p3.y + k2);
}

fn f64_sign(a: vec2<u32>) -> u32 { return a.y >> 31u; }
fn f64_expo(a: vec2<u32>) -> i32 { return i32((a.y >> 20u) & 0x7FFu); }
fn f64_frac(a: vec2<u32>) -> vec2<u32> { return vec2<u32>(a.x, a.y & 0xFFFFFu); }
fn f64_is_nan(a: vec2<u32>) -> bool { return f64_expo(a) == 0x7FF && !u64_is0(f64_frac(a)); }
fn f64_is_inf(a: vec2<u32>) -> bool { return f64_expo(a) == 0x7FF && u64_is0(f64_frac(a)); }
fn f64_is_zero(a: vec2<u32>) -> bool { return (a.x | (a.y & 0x7FFFFFFFu)) == 0u; }
fn f64_inf(s: u32) -> vec2<u32> { return vec2<u32>(0u, (s << 31u) | 0x7FF00000u); }
fn f64_zero(s: u32) -> vec2<u32> { return vec2<u32>(0u, s << 31u); }
fn f64_neg(a: vec2<u32>) -> vec2<u32> { return vec2<u32>(a.x, a.y ^ 0x80000000u); }
fn f64_abs(a: vec2<u32>) -> vec2<u32> { return vec2<u32>(a.x, a.y & 0x7FFFFFFFu); }

// sign << 63 + exp << 52 + sig, added (a carry out of sig moves into the exponent)
fn f64_pack(s: u32, e: i32, sig: vec2<u32>) -> vec2<u32> {
    return u64_add(vec2<u32>(0u, (s << 31u) + (u32(e) << 20u)), sig);
}

// sig has its leading bit at 62 and 10 rounding bits (SoftFloat's roundAndPackFloat64)
fn f64_round_pack(s: u32, e_in: i32, sig_in: vec2<u32>) -> vec2<u32> {
    var e = e_in;
    var sig = sig_in;
    var rb = sig.x & 0x3FFu;
    if (e >= 0x7FD) {
        if (e > 0x7FD || (u64_add(sig, vec2<u32>(0x200u, 0u)).y >> 31u) != 0u) {
            return f64_inf(s);
        }
    }
    if (e < 0) {
        sig = u64_shr_jam(sig, u32(-e));
        e = 0;
        rb = sig.x & 0x3FFu;
    }
    sig = u64_shr(u64_add(sig, vec2<u32>(0x200u, 0u)), 10u);
    if (rb == 0x200u) { sig.x = sig.x & 0xFFFFFFFEu; }
    if (u64_is0(sig)) { e = 0; }
    return f64_pack(s, e, sig);
}

fn f64_norm_round_pack(s: u32, e: i32, sig: vec2<u32>) -> vec2<u32> {
    let sh = i32(u64_clz(sig)) - 1;
    if (sh < 0) { return f64_round_pack(s, e, sig); }
    return f64_round_pack(s, e - sh, u64_shl(sig, u32(sh)));
}

fn f64_add_sigs(a: vec2<u32>, b: vec2<u32>, zs: u32) -> vec2<u32> {
    let ae = f64_expo(a);
    let be = f64_expo(b);
    var as_ = u64_shl(f64_frac(a), 9u);
    var bs = u64_shl(f64_frac(b), 9u);
    let d = ae - be;
    var ze = ae;
    if (d > 0) {
        if (ae == 0x7FF) { return select(a, F64_NAN, !u64_is0(as_)); }
        var dd = d;
        if (be == 0) { dd = dd - 1; } else { bs.y = bs.y | 0x20000000u; }
        bs = u64_shr_jam(bs, u32(dd));
    } else if (d < 0) {
        if (be == 0x7FF) { return select(f64_inf(zs), F64_NAN, !u64_is0(bs)); }
        var dd = -d;
        if (ae == 0) { dd = dd - 1; } else { as_.y = as_.y | 0x20000000u; }
        as_ = u64_shr_jam(as_, u32(dd));
        ze = be;
    } else {
        if (ae == 0x7FF) { return select(a, F64_NAN, !u64_is0(u64_add(as_, bs)) || !u64_is0(as_) || !u64_is0(bs)); }
        if (ae == 0) { return f64_pack(zs, 0, u64_shr(u64_add(as_, bs), 9u)); }
        return f64_round_pack(zs, ae, u64_add(vec2<u32>(0u, 0x40000000u), u64_add(as_, bs)));
    }
    as_.y = as_.y | 0x20000000u;
    var zsig = u64_shl(u64_add(as_, bs), 1u);
    ze = ze - 1;
    if ((zsig.y >> 31u) != 0u) {
        zsig = u64_add(as_, bs);
        ze = ze + 1;
    }
    return f64_round_pack(zs, ze, zsig);
}

fn f64_sub_sigs(a: vec2<u32>, b: vec2<u32>, zs_in: u32) -> vec2<u32> {
    var zs = zs_in;
    var ae = f64_expo(a);
    var be = f64_expo(b);
    var as_ = u64_shl(f64_frac(a), 10u);
    var bs = u64_shl(f64_frac(b), 10u);
    let d = ae - be;
    var zsig: vec2<u32>;
    var ze: i32;
    if (d > 0) {
        if (ae == 0x7FF) { return select(a, F64_NAN, !u64_is0(as_)); }
        var dd = d;
        if (be == 0) { dd = dd - 1; } else { bs.y = bs.y | 0x40000000u; }
        bs = u64_shr_jam(bs, u32(dd));
        as_.y = as_.y | 0x40000000u;
        zsig = u64_sub(as_, bs);
        ze = ae;
    } else if (d < 0) {
        if (be == 0x7FF) { return select(f64_inf(zs ^ 1u), F64_NAN, !u64_is0(bs)); }
        var dd = -d;
        if (ae == 0) { dd = dd - 1; } else { as_.y = as_.y | 0x40000000u; }
        as_ = u64_shr_jam(as_, u32(dd));
        bs.y = bs.y | 0x40000000u;
        zsig = u64_sub(bs, as_);
        ze = be;
        zs = zs ^ 1u;
    } else {
        if (ae == 0x7FF) { return F64_NAN; }
        if (ae == 0) { ae = 1; be = 1; }
        if (u64_lt(bs, as_)) {
            zsig = u64_sub(as_, bs);
            ze = ae;
        } else if (u64_lt(as_, bs)) {
            zsig = u64_sub(bs, as_);
            ze = be;
            zs = zs ^ 1u;
        } else {
            return f64_zero(0u);
        }
    }
    return f64_norm_round_pack(zs, ze - 1, zsig);
}

fn f64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let sa = f64_sign(a);
    if (sa == f64_sign(b)) { return f64_add_sigs(a, b, sa); }
    return f64_sub_sigs(a, b, sa);
}

fn f64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let sa = f64_sign(a);
    if (sa == f64_sign(b)) { return f64_sub_sigs(a, b, sa); }
    return f64_add_sigs(a, b, sa);
}

// (significand with the implicit bit at 52, exponent) of a nonzero finite double
fn f64_unpack_sig(a: vec2<u32>) -> vec3<u32> {
    var e = f64_expo(a);
    var sig = f64_frac(a);
    if (e == 0) {
        let sh = i32(u64_clz(sig)) - 11;
        sig = u64_shl(sig, u32(sh));
        e = 1 - sh;
    } else {
        sig.y = sig.y | 0x00100000u;
    }
    return vec3<u32>(sig.x, sig.y, bitcast<u32>(e));
}

fn f64_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let zs = f64_sign(a) ^ f64_sign(b);
    let ae = f64_expo(a);
    let be = f64_expo(b);
    if (f64_is_nan(a) || f64_is_nan(b)) { return F64_NAN; }
    if (ae == 0x7FF || be == 0x7FF) {
        if (f64_is_zero(a) || f64_is_zero(b)) { return F64_NAN; }
        return f64_inf(zs);
    }
    if (f64_is_zero(a) || f64_is_zero(b)) { return f64_zero(zs); }
    let ua = f64_unpack_sig(a);
    let ub = f64_unpack_sig(b);
    var ze = bitcast<i32>(ua.z) + bitcast<i32>(ub.z) - 0x3FF;
    let as_ = u64_shl(ua.xy, 10u);
    let bs = u64_shl(ub.xy, 11u);
    let p = u64_mul_wide(as_, bs);
    var z = p.zw;
    if ((p.x | p.y) != 0u) { z.x = z.x | 1u; }
    if ((z.y & 0x40000000u) == 0u) {
        z = u64_shl(z, 1u);
        ze = ze - 1;
    }
    return f64_round_pack(zs, ze, z);
}

fn f64_div(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let zs = f64_sign(a) ^ f64_sign(b);
    if (f64_is_nan(a) || f64_is_nan(b)) { return F64_NAN; }
    if (f64_is_inf(a)) {
        if (f64_is_inf(b)) { return F64_NAN; }
        return f64_inf(zs);
    }
    if (f64_is_inf(b)) { return f64_zero(zs); }
    if (f64_is_zero(b)) {
        if (f64_is_zero(a)) { return F64_NAN; }
        return f64_inf(zs);
    }
    if (f64_is_zero(a)) { return f64_zero(zs); }
    let ua = f64_unpack_sig(a);
    let ub = f64_unpack_sig(b);
    var ze = bitcast<i32>(ua.z) - bitcast<i32>(ub.z) + 0x3FD;
    var as_ = u64_shl(ua.xy, 10u);
    let bs = u64_shl(ub.xy, 11u);
    if (!u64_lt(u64_add(as_, as_), bs)) {
        as_ = u64_shr(as_, 1u);
        ze = ze + 1;
    }
    var rem = as_;
    var q = vec2<u32>(0u, 0u);
    for (var i = 0u; i < 64u; i = i + 1u) {
        let carry = rem.y >> 31u;
        rem = u64_shl(rem, 1u);
        q = u64_shl(q, 1u);
        if (carry != 0u || !u64_lt(rem, bs)) {
            rem = u64_sub(rem, bs);
            q.x = q.x | 1u;
        }
    }
    if (!u64_is0(rem)) { q.x = q.x | 1u; }
    return f64_round_pack(zs, ze, q);
}

fn f64_eq(a: vec2<u32>, b: vec2<u32>) -> bool {
    if (f64_is_nan(a) || f64_is_nan(b)) { return false; }
    return (a.x == b.x && a.y == b.y) || (f64_is_zero(a) && f64_is_zero(b));
}

fn f64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    if (f64_is_nan(a) || f64_is_nan(b)) { return false; }
    let sa = f64_sign(a);
    let sb = f64_sign(b);
    if (sa != sb) { return sa != 0u && !(f64_is_zero(a) && f64_is_zero(b)); }
    if (a.x == b.x && a.y == b.y) { return false; }
    return (sa != 0u) != u64_lt(a, b);
}

fn f64_le(a: vec2<u32>, b: vec2<u32>) -> bool {
    return f64_lt(a, b) || f64_eq(a, b);
}

// fmax / fmin: NaN ignored unless both are NaN
fn f64_max(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(a)) { return b; }
    if (f64_is_nan(b)) { return a; }
    return select(a, b, f64_lt(a, b));
}

fn f64_min(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(a)) { return b; }
    if (f64_is_nan(b)) { return a; }
    return select(a, b, f64_lt(b, a));
}

// ---- conversions ----
fn f64_from_f32(x: f32) -> vec2<u32> {
    let u = bitcast<u32>(x);
    let s = u >> 31u;
    var e = i32((u >> 23u) & 0xFFu);
    var m = u & 0x7FFFFFu;
    if (e == 0xFF) {
        if (m != 0u) { return F64_NAN; }
        return f64_inf(s);
    }
    if (e == 0) {
        if (m == 0u) { return f64_zero(s); }
        let sh = i32(countLeadingZeros(m)) - 8;
        m = (m << u32(sh)) & 0x7FFFFFu;
        e = 1 - sh;
    }
    return vec2<u32>(m << 29u, (s << 31u) | (u32(e + 896) << 20u) | (m >> 3u));
}

fn f32_round_pack(s: u32, e_in: i32, sig_in: u32) -> f32 {
    var e = e_in;
    var sig = sig_in;
    var rb = sig & 0x7Fu;
    if (e >= 0xFD) {
        if (e > 0xFD || i32(sig + 0x40u) < 0) {
            return bitcast<f32>((s << 31u) | 0x7F800000u);
        }
    }
    if (e < 0) {
        let n = u32(-e);
        if (n >= 32u) {
            sig = select(0u, 1u, sig != 0u);
        } else {
            sig = (sig >> n) | select(0u, 1u, (sig << (32u - n)) != 0u);
        }
        e = 0;
        rb = sig & 0x7Fu;
    }
    sig = (sig + 0x40u) >> 7u;
    if (rb == 0x40u) { sig = sig & 0xFFFFFFFEu; }
    if (sig == 0u) { e = 0; }
    return bitcast<f32>((s << 31u) + (u32(e) << 23u) + sig);
}

// round to the nearest float32, ties to even (numpy's float64 -> float32 cast)
fn f64_to_f32(a: vec2<u32>) -> f32 {
    let s = f64_sign(a);
    var e = f64_expo(a);
    let fr = f64_frac(a);
    if (e == 0x7FF) {
        if (!u64_is0(fr)) { return bitcast<f32>(F64_QNAN32); }
        return bitcast<f32>((s << 31u) | 0x7F800000u);
    }
    var sig = u64_shr_jam(fr, 22u).x;
    if (e != 0 || sig != 0u) {
        sig = sig | 0x40000000u;
        e = e - 0x381;
    }
    return f32_round_pack(s, e, sig);
}

fn f64_from_u32(x: u32) -> vec2<u32> {
    if (x == 0u) { return vec2<u32>(0u, 0u); }
    let sh = countLeadingZeros(x) + 21u;
    return f64_pack(0u, 0x432 - i32(sh), u64_shl(vec2<u32>(x, 0u), sh));
}

fn f64_from_i32(x: i32) -> vec2<u32> {
    if (x == 0) { return vec2<u32>(0u, 0u); }
    let s = select(0u, 1u, x < 0);
    let a = select(bitcast<u32>(x), 0u - bitcast<u32>(x), x < 0);
    let sh = countLeadingZeros(a) + 21u;
    return f64_pack(s, 0x432 - i32(sh), u64_shl(vec2<u32>(a, 0u), sh));
}

// two's complement 64-bit integer -> double, rounded
fn f64_from_i64(v: vec2<u32>) -> vec2<u32> {
    if (u64_is0(v)) { return vec2<u32>(0u, 0u); }
    let s = v.y >> 31u;
    let a = select(v, u64_neg(v), s != 0u);
    if (s != 0u && a.y == 0x80000000u && a.x == 0u) { return vec2<u32>(0u, 0xC3E00000u); }
    return f64_norm_round_pack(s, 0x43C, a);
}

// truncation toward zero to a two's complement 64-bit integer (out of range: -2**63, as numpy on x86)
fn f64_to_i64(a: vec2<u32>) -> vec2<u32> {
    let e = f64_expo(a);
    if (e >= 0x43E) { return vec2<u32>(0u, 0x80000000u); }
    if (e < 0x3FF) { return vec2<u32>(0u, 0u); }
    var sig = f64_frac(a);
    sig.y = sig.y | 0x00100000u;
    let sh = e - 0x433;
    if (sh >= 0) { sig = u64_shl(sig, u32(sh)); } else { sig = u64_shr(sig, u32(-sh)); }
    return select(sig, u64_neg(sig), f64_sign(a) != 0u);
}

// truncation toward zero, then the low 32 bits (modulo 2**32); NaN and Inf give 0
fn f64_wrap32(a: vec2<u32>) -> u32 {
    let e = f64_expo(a);
    if (e == 0x7FF || e < 0x3FF) { return 0u; }
    var sig = f64_frac(a);
    sig.y = sig.y | 0x00100000u;
    let sh = e - 0x433;
    var low: u32;
    if (sh >= 0) { low = u64_shl(sig, u32(sh)).x; } else { low = u64_shr(sig, u32(-sh)).x; }
    return select(low, 0u - low, f64_sign(a) != 0u);
}

fn f32_wrap32(x: f32) -> u32 {
    let u = bitcast<u32>(x);
    let e = i32((u >> 23u) & 0xFFu);
    if (e == 0xFF || e < 127) { return 0u; }
    let sig = (u & 0x7FFFFFu) | 0x800000u;
    let sh = e - 150;
    var low: u32;
    if (sh >= 32) { low = 0u; } else if (sh >= 0) { low = sig << u32(sh); } else { low = sig >> u32(-sh); }
    return select(low, 0u - low, (u >> 31u) != 0u);
}

// ---- rounding to integers ----
fn f64_trunc(a: vec2<u32>) -> vec2<u32> {
    let e = f64_expo(a);
    if (e >= 0x433) { return a; }
    if (e < 0x3FF) { return f64_zero(f64_sign(a)); }
    let mask = u64_shl(vec2<u32>(0xFFFFFFFFu, 0xFFFFFFFFu), u32(0x433 - e));
    return vec2<u32>(a.x & mask.x, a.y & mask.y);
}

fn f64_floor(a: vec2<u32>) -> vec2<u32> {
    let t = f64_trunc(a);
    if (f64_sign(a) != 0u && !f64_eq(t, a) && !f64_is_nan(a)) { return f64_sub(t, F64_ONE); }
    return t;
}

fn f64_ceil(a: vec2<u32>) -> vec2<u32> {
    let t = f64_trunc(a);
    if (f64_sign(a) == 0u && !f64_eq(t, a) && !f64_is_nan(a)) { return f64_add(t, F64_ONE); }
    return t;
}

// halves away from zero (MATLAB round)
fn f64_round(a: vec2<u32>) -> vec2<u32> {
    let t = f64_trunc(a);
    if (f64_is_nan(a) || f64_is_inf(a)) { return a; }
    let d = f64_abs(f64_sub(a, t));
    if (f64_le(F64_HALF, d)) {
        if (f64_sign(a) != 0u) { return f64_sub(t, F64_ONE); }
        return f64_add(t, F64_ONE);
    }
    return t;
}

// C fmod: x - trunc(x / y) * y, exactly; the sign of x
fn f64_fmod(x: vec2<u32>, y: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x) || f64_is_nan(y) || f64_is_inf(x) || f64_is_zero(y)) { return F64_NAN; }
    let sx = f64_sign(x);
    let ax = f64_abs(x);
    let ay = f64_abs(y);
    if (f64_is_inf(y) || u64_lt(ax, ay)) { return x; }
    if (ax.x == ay.x && ax.y == ay.y) { return f64_zero(sx); }
    let ux = f64_unpack_sig(x);
    let uy = f64_unpack_sig(y);
    var ex = bitcast<i32>(ux.z);
    let ey = bitcast<i32>(uy.z);
    var mx = ux.xy;
    let my = uy.xy;
    for (; ex > ey; ex = ex - 1) {
        if (!u64_lt(mx, my)) {
            mx = u64_sub(mx, my);
            if (u64_is0(mx)) { return f64_zero(sx); }
        }
        mx = u64_shl(mx, 1u);
    }
    if (!u64_lt(mx, my)) {
        mx = u64_sub(mx, my);
        if (u64_is0(mx)) { return f64_zero(sx); }
    }
    let sh = i32(u64_clz(mx)) - 11;
    mx = u64_shl(mx, u32(sh));
    ex = ex - sh;
    if (ex <= 0) {
        mx = u64_shr(mx, u32(1 - ex));
        return vec2<u32>(mx.x, mx.y | (sx << 31u));
    }
    return vec2<u32>(mx.x, (mx.y & 0xFFFFFu) | (u32(ex) << 20u) | (sx << 31u));
}

// MATLAB mod for doubles: the sign of y (numpy's floor-mod), mod(x, 0) = x
fn f64_mod(x: vec2<u32>, y: vec2<u32>) -> vec2<u32> {
    if (f64_is_zero(y)) { return x; }
    if (f64_is_nan(x) || f64_is_nan(y) || f64_is_inf(x)) { return F64_NAN; }
    if (f64_is_inf(y)) {
        // numpy: x if the signs agree (or x is 0), else y
        if (f64_is_zero(x) || f64_sign(x) == f64_sign(y)) { return select(x, f64_zero(f64_sign(y)), f64_is_zero(x)); }
        return y;
    }
    var r = f64_fmod(x, y);
    if (!f64_is_zero(r)) {
        if (f64_sign(r) != f64_sign(y)) { r = f64_add(r, y); }
    } else {
        r = f64_zero(f64_sign(y));
    }
    return r;
}

fn f64_sign_of(a: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(a) || f64_is_zero(a)) { return a; }
    return vec2<u32>(0u, (a.y & 0x80000000u) | 0x3FF00000u);
}

fn f64_is_integer(a: vec2<u32>) -> bool {
    let t = f64_trunc(a);
    return !f64_is_nan(a) && !f64_is_inf(a) && t.x == a.x && t.y == a.y;
}

// sqrt, correctly rounded (bit by bit on the significand)
fn f64_sqrt(a: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(a)) { return F64_NAN; }
    if (f64_is_zero(a)) { return a; }
    if (f64_sign(a) != 0u) { return F64_NAN; }
    if (f64_is_inf(a)) { return a; }
    let ua = f64_unpack_sig(a);
    var e = bitcast<i32>(ua.z) - 0x3FF;
    var m = ua.xy;  // [2^52, 2^53)
    if ((e & 1) != 0) { m = u64_shl(m, 1u); e = e - 1; }
    // m * 2^(e - 52), e even; rad = m << 10 in [2^62, 2^64): sqrt = sqrt(rad * 2^48) * 2^(e/2 - 55).
    // floor(sqrt(rad * 2^48)), 56 bits, two radicand bits a step (rem < 2^57: no overflow)
    let rad = u64_shl(m, 10u);
    var res = vec2<u32>(0u, 0u);
    var rem = vec2<u32>(0u, 0u);
    for (var i = 0u; i < 56u; i = i + 1u) {
        var two: u32 = 0u;
        if (i < 32u) { two = (u64_shr(rad, 62u - 2u * i)).x & 3u; }
        rem = u64_add(u64_shl(rem, 2u), vec2<u32>(two, 0u));
        let trial = u64_add(u64_shl(res, 2u), vec2<u32>(1u, 0u));
        res = u64_shl(res, 1u);
        if (!u64_lt(rem, trial)) {
            rem = u64_sub(rem, trial);
            res.x = res.x | 1u;
        }
    }
    // res in [2^55, 2^56): leading bit to 62, the remainder as the sticky bit
    var sig = u64_shl(res, 7u);
    if (!u64_is0(rem)) { sig.x = sig.x | 1u; }
    return f64_round_pack(0u, e / 2 + 0x3FF - 1, sig);
}
