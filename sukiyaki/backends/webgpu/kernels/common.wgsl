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
