// ---- common.wgsl: integer helpers and exact integer -> float32 conversions ----
// (needs f64.wgsl)

// int -> float32 rounded to nearest even (WGSL leaves the rounding of f32(i) open)
fn i32_to_f32(x: i32) -> f32 {
    if (abs(x) <= 16777216 && x != -2147483647 - 1) { return f32(x); }
    return f64_to_f32(f64_from_i32(x));
}

fn u32_to_f32(x: u32) -> f32 {
    if (x <= 16777216u) { return f32(x); }
    return f64_to_f32(f64_from_u32(x));
}

fn i64_from_i32(x: i32) -> vec2<u32> {
    return vec2<u32>(bitcast<u32>(x), select(0u, 0xFFFFFFFFu, x < 0));
}

// MATLAB mod of integers: the sign of b, mod(a, 0) = a
fn imod_i32(a: i32, b: i32) -> i32 {
    if (b == 0) { return a; }
    if (b == -1) { return 0; }
    let r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) { return r + b; }
    return r;
}

// C remainder of integers (numpy fmod): the sign of a, fmod(a, 0) = 0
fn irem_i32(a: i32, b: i32) -> i32 {
    if (b == 0 || b == -1) { return 0; }
    return a % b;
}

// integer powers, wrapping (numpy's integer power; a negative exponent gives 0 unless |a| = 1)
fn ipow_i32(a: i32, b_in: i32) -> i32 {
    if (b_in < 0) {
        if (a == 1) { return 1; }
        if (a == -1) { return select(1, -1, (b_in & 1) != 0); }
        return 0;
    }
    var r: i32 = 1;
    var x = a;
    var b = b_in;
    loop {
        if (b == 0) { break; }
        if ((b & 1) != 0) { r = r * x; }
        x = x * x;
        b = b >> 1u;
    }
    return r;
}

fn ipow_u32(a: u32, b_in: u32) -> u32 {
    var r: u32 = 1u;
    var x = a;
    var b = b_in;
    loop {
        if (b == 0u) { break; }
        if ((b & 1u) != 0u) { r = r * x; }
        x = x * x;
        b = b >> 1u;
    }
    return r;
}

// numpy's casts of floats to integers (on x86): truncation toward zero; NaN or out of the
// int32 range gives -2^31, and the narrow integer types take the low bits of that
fn f64_to_i32_np(a: vec2<u32>) -> i32 {
    if (f64_is_nan(a) || !f64_lt(a, vec2<u32>(0u, 0x41E00000u)) || f64_lt(a, vec2<u32>(0u, 0xC1E00000u))) {
        return -2147483647 - 1;
    }
    return bitcast<i32>(f64_wrap32(a));
}

// ... and to unsigned words: int32's result, or the value itself in [2^31, 2^32)
fn f64_to_u32_np(a: vec2<u32>) -> u32 {
    if (!f64_is_nan(a) && !f64_lt(a, vec2<u32>(0u, 0x41E00000u)) && f64_lt(a, vec2<u32>(0u, 0x41F00000u))) {
        return f64_wrap32(a);
    }
    return bitcast<u32>(f64_to_i32_np(a));
}

// truncation, then modulo 2^64 into int64 (cast_wrap to int64); NaN and Inf give 0
fn f64_wrap64(a: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(a) || f64_is_inf(a)) { return vec2<u32>(0u, 0u); }
    return f64_to_i64(f64_fmod(f64_trunc(a), vec2<u32>(0u, 0x43F00000u)));
}

// ---- int64 as two's complement word pairs (numpy's wrapping integer arithmetic) ----
fn i64_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = mul32_wide(a.x, b.x);
    return vec2<u32>(lo.x, lo.y + a.x * b.y + a.y * b.x);
}

fn i64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return u64_lt(vec2<u32>(a.x, a.y ^ 0x80000000u), vec2<u32>(b.x, b.y ^ 0x80000000u));
}

fn i64_eq(a: vec2<u32>, b: vec2<u32>) -> bool { return a.x == b.x && a.y == b.y; }
fn i64_is_neg(a: vec2<u32>) -> bool { return (a.y >> 31u) != 0u; }
fn i64_max(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> { return select(a, b, i64_lt(a, b)); }
fn i64_min(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> { return select(a, b, i64_lt(b, a)); }
fn i64_abs(a: vec2<u32>) -> vec2<u32> { return select(a, u64_neg(a), i64_is_neg(a)); }

fn i64_sign(a: vec2<u32>) -> vec2<u32> {
    if (u64_is0(a)) { return a; }
    return select(vec2<u32>(1u, 0u), vec2<u32>(0xFFFFFFFFu, 0xFFFFFFFFu), i64_is_neg(a));
}

fn i64_pow(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (i64_is_neg(b)) {
        if (i64_eq(a, vec2<u32>(1u, 0u))) { return a; }
        if (i64_eq(a, vec2<u32>(0xFFFFFFFFu, 0xFFFFFFFFu))) { return select(vec2<u32>(1u, 0u), a, (b.x & 1u) != 0u); }
        return vec2<u32>(0u, 0u);
    }
    var r = vec2<u32>(1u, 0u);
    var x = a;
    var e = b;
    loop {
        if (u64_is0(e)) { break; }
        if ((e.x & 1u) != 0u) { r = i64_mul(r, x); }
        x = i64_mul(x, x);
        e = u64_shr(e, 1u);
    }
    return r;
}

// |a| mod |b| of unsigned 64-bit integers (b != 0), by restoring division
fn u64_rem(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    var r = vec2<u32>(0u, 0u);
    for (var i = 0u; i < 64u; i = i + 1u) {
        let carry = r.y >> 31u;
        r = u64_shl(r, 1u);
        r.x = r.x | (u64_shr(a, 63u - i).x & 1u);
        if (carry != 0u || !u64_lt(r, b)) { r = u64_sub(r, b); }
    }
    return r;
}

// C remainder of int64 (numpy fmod: the sign of a; fmod(a, 0) = 0), exact
fn i64_rem(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (u64_is0(b)) { return b; }
    let r = u64_rem(i64_abs(a), i64_abs(b));
    return select(r, u64_neg(r), i64_is_neg(a));
}

// MATLAB mod of int64: the sign of b, mod(a, 0) = a, exact
fn i64_mod(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (u64_is0(b)) { return a; }
    let r = i64_rem(a, b);
    if (!u64_is0(r) && i64_is_neg(r) != i64_is_neg(b)) { return u64_add(r, b); }
    return r;
}
