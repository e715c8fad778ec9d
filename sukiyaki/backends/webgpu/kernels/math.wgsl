// ---- math.wgsl: float32 functions accurate to a few units in the last place ----
// WGSL's built-in exp, log, pow, tan... have implementation-defined accuracy (Mesa's
// lavapipe: log off by 1000 ulps near 1); these follow the Cephes single-precision
// algorithms (S. L. Moshier) instead, with NaN and Inf tested on the bits (a shader
// compiler may assume x == x). pow, and log/exp of doubles, are fdlibm's algorithms in the
// software double of f64.wgsl (needed first): float32 pow is then rounded once from a
// result good to about 1e-14, as numpy's powf is correctly rounded.

// Inf and NaN come from private variables: a constant expression may not be Inf or NaN (WGSL; Tint enforces it)
var<private> SK_INF_BITS: u32 = 0x7F800000u;
var<private> SK_NAN_BITS: u32 = 0x7FC00000u;
fn sk_inf() -> f32 { return bitcast<f32>(SK_INF_BITS); }
const SK_LOG2E: f32 = 1.44269504088896341f;
const SK_LN2_HI: f32 = 0.693359375f;
const SK_LN2_LO: f32 = -2.12194440e-4f;
const SK_PI: f32 = 3.14159265358979f;
const SK_PIO2: f32 = 1.5707963267948966f;
const SK_PIO4: f32 = 0.7853981633974483f;

fn sk_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7FFFFFFFu) > 0x7F800000u; }
fn sk_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7FFFFFFFu) == 0x7F800000u; }
fn sk_isfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7FFFFFFFu) < 0x7F800000u; }
fn sk_nan() -> f32 { return bitcast<f32>(SK_NAN_BITS); }
fn sk_truthy(x: f32) -> bool { return (bitcast<u32>(x) & 0x7FFFFFFFu) != 0u; }
fn sk_copysign(x: f32, s: f32) -> f32 {
    return bitcast<f32>((bitcast<u32>(x) & 0x7FFFFFFFu) | (bitcast<u32>(s) & 0x80000000u));
}

fn sk_pow2i(n: i32) -> f32 { return bitcast<f32>(u32(n + 127) << 23u); }  // n in [-126, 127]

// 2^n * x, in three exact scalings (2^n alone may not be a float32)
fn sk_ldexp(x: f32, n_in: i32) -> f32 {
    let n = clamp(n_in, -330, 330);
    let a = n / 3;
    let b = (n - a) / 2;
    return x * sk_pow2i(a) * sk_pow2i(b) * sk_pow2i(n - a - b);
}

fn sk_fmax(a: f32, b: f32) -> f32 {
    if (sk_isnan(a)) { return b; }
    if (sk_isnan(b)) { return a; }
    return select(a, b, b > a);
}

fn sk_fmin(a: f32, b: f32) -> f32 {
    if (sk_isnan(a)) { return b; }
    if (sk_isnan(b)) { return a; }
    return select(a, b, b < a);
}

fn sk_sign(x: f32) -> f32 {
    if (sk_isnan(x) || x == 0.0f) { return x; }
    return select(-1.0f, 1.0f, x > 0.0f);
}

// MATLAB round: halves away from zero
fn sk_round(x: f32) -> f32 {
    if (!sk_isfinite(x)) { return x; }
    let t = trunc(x);
    if (abs(x - t) >= 0.5f) { return t + select(-1.0f, 1.0f, x > 0.0f); }
    return t;
}

fn sk_exp(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    if (x > 88.72283905206835f) { return sk_inf(); }
    if (x < -103.972084f) { return 0.0f; }
    let n = floor(SK_LOG2E * x + 0.5f);
    let r = (x - n * SK_LN2_HI) - n * SK_LN2_LO;
    let z = r * r;
    let p = ((((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r
              + 1.6666665459E-1f) * r + 5.0000001201E-1f) * z + r) + 1.0f;
    return sk_ldexp(p, i32(n));
}

// (m - 1 + y, e) of x = 2^e * m, the Cephes log kernel: log(x) = kernel + e * ln 2
fn sk_log_parts(x_in: f32) -> vec2<f32> {
    var x = x_in;
    var e: i32 = 0;
    if (x < 1.17549435e-38f) {  // subnormal: scale up first
        x = x * 33554432.0f;
        e = -25;
    }
    let u = bitcast<u32>(x);
    e = e + i32((u >> 23u) & 0xFFu) - 126;
    var m = bitcast<f32>((u & 0x007FFFFFu) | 0x3F000000u);  // [0.5, 1)
    if (m < 0.707106781186547524f) {
        e = e - 1;
        m = m + m - 1.0f;
    } else {
        m = m - 1.0f;
    }
    let z = m * m;
    var y = ((((((((7.0376836292E-2f * m - 1.1514610310E-1f) * m + 1.1676998740E-1f) * m - 1.2420140846E-1f) * m
               + 1.4249322787E-1f) * m - 1.6668057665E-1f) * m + 2.0000714765E-1f) * m - 2.4999993993E-1f) * m
               + 3.3333331174E-1f) * m * z;
    let fe = f32(e);
    y = y - 0.5f * z;
    return vec2<f32>(m + y, fe);
}

fn sk_log_special(x: f32) -> vec2<f32> {
    // (handled, value)
    if (sk_isnan(x)) { return vec2<f32>(1.0f, x); }
    if (x < 0.0f) { return vec2<f32>(1.0f, sk_nan()); }
    if (x == 0.0f) { return vec2<f32>(1.0f, -sk_inf()); }
    if (sk_isinf(x)) { return vec2<f32>(1.0f, sk_inf()); }
    return vec2<f32>(0.0f, 0.0f);
}

fn sk_log(x: f32) -> f32 {
    let s = sk_log_special(x);
    if (s.x != 0.0f) { return s.y; }
    let p = sk_log_parts(x);
    // (m - 1 + y) + e ln2, ln2 = SK_LN2_HI + SK_LN2_LO, small terms first
    return (p.x + p.y * SK_LN2_LO) + p.y * SK_LN2_HI;
}

fn sk_log2(x: f32) -> f32 {
    let s = sk_log_special(x);
    if (s.x != 0.0f) { return s.y; }
    let p = sk_log_parts(x);
    return p.x * SK_LOG2E + p.y;
}

fn sk_log10(x: f32) -> f32 {
    let s = sk_log_special(x);
    if (s.x != 0.0f) { return s.y; }
    let p = sk_log_parts(x);
    return (p.x * 0.434294481903251827651f + p.y * 2.48745663981195213739E-4f) + p.y * 3.0078125E-1f;
}

// log1p, expm1, sinh: series near 0, where the usual forms cancel ((1 + x) - 1 and the like,
// which a shader compiler may also fold away: Mesa does), the direct forms elsewhere
fn sk_log1p(x: f32) -> f32 {
    if (sk_isnan(x) || x == sk_inf()) { return x; }
    if (abs(x) < 0.5f) {
        // 2 atanh(s), s = x / (2 + x), |s| < 1/3
        let s = x / (2.0f + x);
        let z = s * s;
        let p = ((((((z / 15.0f + 1.0f / 13.0f) * z + 1.0f / 11.0f) * z + 1.0f / 9.0f) * z + 1.0f / 7.0f) * z
                  + 0.2f) * z + 1.0f / 3.0f) * z;
        return 2.0f * s + 2.0f * s * p;
    }
    return sk_log(1.0f + x);
}

fn sk_expm1(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    if (abs(x) < 0.5f) {
        // Taylor to x^10 / 10!: the tail is below 1e-10 of the result
        let p = (((((((((x / 10.0f + 1.0f) * x / 9.0f + 1.0f) * x / 8.0f + 1.0f) * x / 7.0f + 1.0f) * x / 6.0f
                    + 1.0f) * x / 5.0f + 1.0f) * x / 4.0f + 1.0f) * x / 3.0f + 1.0f) * x / 2.0f);
        return x + x * p;
    }
    if (x < -17.0f) { return -1.0f; }
    return sk_exp(x) - 1.0f;
}

// exp(a) / 2 for a up to ~89.4 (exp(a) alone would overflow past 88.7)
fn sk_half_exp(a: f32) -> f32 {
    let e = sk_exp(0.5f * a);
    return (0.5f * e) * e;
}

fn sk_sinh(x: f32) -> f32 {
    if (!sk_isfinite(x)) { return x; }
    let a = abs(x);
    var r: f32;
    if (a < 1.0f) {
        let z = a * a;
        r = a + a * z * (((((z / 110.0f + 1.0f) * z / 72.0f + 1.0f) * z / 42.0f + 1.0f) * z / 20.0f + 1.0f) / 6.0f);
    } else if (a > 40.0f) {
        r = sk_half_exp(a);
    } else {
        let e = sk_exp(a);
        r = 0.5f * e - 0.5f / e;
    }
    return sk_copysign(r, x);
}

fn sk_cosh(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    let a = abs(x);
    if (a > 40.0f) { return sk_half_exp(a); }
    let e = sk_exp(a);
    return 0.5f * e + 0.5f / e;
}

fn sk_tanh(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    let a = abs(x);
    if (a >= 9.1f) { return sk_copysign(1.0f, x); }
    if (a < 0.625f) {
        let z = x * x;
        return ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z + 1.33314422036E-1f) * z
                - 3.33332819422E-1f) * z * x + x;
    }
    let e = sk_exp(a + a);
    return sk_copysign(1.0f - 2.0f / (e + 1.0f), x);
}

fn sk_sigmoid(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    let e = sk_exp(-abs(x));
    if (x >= 0.0f) { return 1.0f / (1.0f + e); }
    return e / (1.0f + e);
}

fn sk_atan_pos(x_in: f32) -> f32 {
    var x = x_in;
    var y: f32 = 0.0f;
    if (x > 2.414213562373095f) {
        y = SK_PIO2;
        x = -1.0f / x;
    } else if (x > 0.4142135623730950f) {
        y = SK_PIO4;
        x = (x - 1.0f) / (x + 1.0f);
    }
    let z = x * x;
    return y + ((((8.05374449538e-2f * z - 1.38776856032E-1f) * z + 1.99777106478E-1f) * z - 3.33329491539E-1f) * z * x + x);
}

fn sk_atan(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    if (sk_isinf(x)) { return sk_copysign(SK_PIO2, x); }
    return sk_copysign(sk_atan_pos(abs(x)), x);
}

fn sk_atan2(y: f32, x: f32) -> f32 {
    if (sk_isnan(x) || sk_isnan(y)) { return sk_nan(); }
    let xneg = (bitcast<u32>(x) >> 31u) != 0u;
    if (y == 0.0f) {
        if (xneg) { return sk_copysign(SK_PI, y); }
        return y;
    }
    if (x == 0.0f) { return sk_copysign(SK_PIO2, y); }
    if (sk_isinf(x)) {
        if (sk_isinf(y)) {
            if (xneg) { return sk_copysign(3.0f * SK_PIO4, y); }
            return sk_copysign(SK_PIO4, y);
        }
        if (xneg) { return sk_copysign(SK_PI, y); }
        return sk_copysign(0.0f, y);
    }
    if (sk_isinf(y)) { return sk_copysign(SK_PIO2, y); }
    let q = abs(y / x);
    var z: f32;
    if (sk_isinf(q)) { z = SK_PIO2; } else { z = sk_atan_pos(q); }
    if (xneg) { z = SK_PI - z; }
    return sk_copysign(z, y);
}

fn sk_asin(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    let a = abs(x);
    if (a > 1.0f) { return sk_nan(); }
    if (a < 1.0e-4f) { return x; }
    var z: f32;
    var r: f32;
    var flag = false;
    if (a > 0.5f) {
        z = 0.5f * (1.0f - a);
        r = sqrt(z);
        flag = true;
    } else {
        z = a * a;
        r = a;
    }
    var w = ((((4.2163199048E-2f * z + 2.4181311049E-2f) * z + 4.5470025998E-2f) * z + 7.4953002686E-2f) * z
             + 1.6666752422E-1f) * z * r + r;
    if (flag) { w = SK_PIO2 - (w + w); }
    return sk_copysign(w, x);
}

fn sk_acos(x: f32) -> f32 {
    if (sk_isnan(x)) { return x; }
    if (x < -1.0f || x > 1.0f) { return sk_nan(); }
    if (x < -0.5f) { return SK_PI - 2.0f * sk_asin(sqrt(0.5f * (1.0f + x))); }
    if (x > 0.5f) { return 2.0f * sk_asin(sqrt(0.5f * (1.0f - x))); }
    return SK_PIO2 - sk_asin(x);
}

// sin, cos, tan: |x| reduced to r in [-pi/4, pi/4] and a quadrant q (x = r + q pi/2 modulo
// 2 pi): Cody-Waite in three parts while |x| < 8192, else Payne-Hanek with 2/pi to 224 bits
// (exact integer products of the significand with a 96-bit window), then the Cephes
// polynomials. numpy's float32 functions are accurate for every argument; so are these.
// the 32 bits of 2/pi at fractional positions p .. p + 31 (position 1 is 2^-1)
fn sk_two_over_pi_bits(p: i32) -> u32 {
    // (a function-scope array: indexed at run time, which WGSL allows on these)
    var bits = array<u32, 9>(0xA2F9836Eu, 0x4E441529u, 0xFC2757D1u, 0xF534DDC0u, 0xDB629599u,
                             0x3C439041u, 0xFE5163ABu, 0xDEBBC561u, 0xB7246E3Au);
    let idx = p - 1;
    if (idx + 32 <= 0) { return 0u; }
    if (idx < 0) { return bits[0] >> u32(-idx); }
    let wi = min(u32(idx / 32), 7u);
    let sh = u32(idx % 32);
    if (sh == 0u) { return bits[wi]; }
    return (bits[wi] << sh) | (bits[wi + 1u] >> (32u - sh));
}

fn sk_reduce_large(a: f32) -> vec2<f32> {
    let u = bitcast<u32>(a);
    let mant = (u & 0x7FFFFFu) | 0x800000u;
    let e = i32((u >> 23u) & 0xFFu) - 150;  // a = mant 2^e
    let s = e - 1;  // 2/pi bits s .. s + 95 make the window: a (2/pi) = mant window 2^-94 (mod 4)
    let w2 = sk_two_over_pi_bits(s);
    let w1 = sk_two_over_pi_bits(s + 32);
    let w0 = sk_two_over_pi_bits(s + 64);
    let p0 = mul32_wide(mant, w0);
    let p1 = mul32_wide(mant, w1);
    let p2 = mul32_wide(mant, w2);
    // P = p0 + p1 2^32 + p2 2^64; words 1 and 2 of P:
    let q1 = p0.y + p1.x;
    let c1 = select(0u, 1u, q1 < p0.y);
    let q2 = p1.y + p2.x + c1;
    var j = q2 >> 30u;
    // the fraction: bits 93 .. 32 of P, as a double in [0, 1)
    var frac = f64_mul(f64_from_i64(vec2<u32>(q1, q2 & 0x3FFFFFFFu)), vec2<u32>(0u, 0x3C100000u));  // 2^-62
    if (f64_le(F64_HALF, frac)) {
        frac = f64_sub(frac, F64_ONE);
        j = j + 1u;
    }
    let r = f64_to_f32(f64_mul(frac, vec2<u32>(0x54442D18u, 0x3FF921FBu)));  // pi/2
    return vec2<f32>(r, f32(j & 3u));
}

fn sk_reduce(a: f32) -> vec2<f32> {
    if (a > 8192.0f) { return sk_reduce_large(a); }
    var j = u32(floor(a * 1.27323954473516f));
    var y = f32(j);
    if ((j & 1u) != 0u) { j = j + 1u; y = y + 1.0f; }
    let r = ((a - y * 0.78515625f) - y * 2.4187564849853515625e-4f) - y * 3.77489497744594108e-8f;
    return vec2<f32>(r, f32((j >> 1u) & 3u));
}

fn sk_sin_poly(z: f32, r: f32) -> f32 {
    return ((-1.9515295891E-4f * z + 8.3321608736E-3f) * z - 1.6666654611E-1f) * z * r + r;
}

fn sk_cos_poly(z: f32) -> f32 {
    return ((2.443315711809948E-005f * z - 1.388731625493765E-003f) * z + 4.166664568298827E-002f) * z * z - 0.5f * z + 1.0f;
}

fn sk_sin(x: f32) -> f32 {
    if (!sk_isfinite(x)) { return sk_nan(); }
    let rq = sk_reduce(abs(x));
    let q = u32(rq.y);
    let z = rq.x * rq.x;
    var v: f32;
    if ((q & 1u) != 0u) { v = sk_cos_poly(z); } else { v = sk_sin_poly(z, rq.x); }
    if (q >= 2u) { v = -v; }
    return select(v, -v, x < 0.0f);
}

fn sk_cos(x: f32) -> f32 {
    if (!sk_isfinite(x)) { return sk_nan(); }
    let rq = sk_reduce(abs(x));
    let q = u32(rq.y);
    let z = rq.x * rq.x;
    var v: f32;
    if ((q & 1u) != 0u) { v = sk_sin_poly(z, rq.x); } else { v = sk_cos_poly(z); }
    if (q == 1u || q == 2u) { v = -v; }
    return v;
}

fn sk_tan(x: f32) -> f32 {
    if (!sk_isfinite(x)) { return sk_nan(); }
    let rq = sk_reduce(abs(x));
    let r = rq.x;
    let z = r * r;
    var y: f32;
    if (abs(r) > 1.0e-4f) {
        y = (((((9.38540185543E-3f * z + 3.11992232697E-3f) * z + 2.44301354525E-2f) * z + 5.34112807005E-2f) * z
              + 1.33387994085E-1f) * z + 3.33331568548E-1f) * z * r + r;
    } else {
        y = r;
    }
    if ((u32(rq.y) & 1u) != 0u) { y = -1.0f / y; }
    return select(y, -y, x < 0.0f);
}

// C fmod of floats, exact (through the software double: every step is exact)
fn sk_rem(a: f32, b: f32) -> f32 {
    return f64_to_f32(f64_fmod(f64_from_f32(a), f64_from_f32(b)));
}

// MATLAB mod: the sign of b (numpy's floor-mod), mod(a, 0) = a
fn sk_mod(a: f32, b: f32) -> f32 {
    return f64_to_f32(f64_mod(f64_from_f32(a), f64_from_f32(b)));
}

// ---- doubles: log, exp, pow (fdlibm's __ieee754_log and __ieee754_exp, in software) ----
const D_LG1: vec2<u32> = vec2<u32>(0x55555593u, 0x3FE55555u);
const D_LG2: vec2<u32> = vec2<u32>(0x9997FA04u, 0x3FD99999u);
const D_LG3: vec2<u32> = vec2<u32>(0x94229359u, 0x3FD24924u);
const D_LG4: vec2<u32> = vec2<u32>(0x1D8E78AFu, 0x3FCC71C5u);
const D_LG5: vec2<u32> = vec2<u32>(0x96CB03DEu, 0x3FC74664u);
const D_LG6: vec2<u32> = vec2<u32>(0xD078C69Fu, 0x3FC39A09u);
const D_LG7: vec2<u32> = vec2<u32>(0xDF3E5244u, 0x3FC2F112u);
const D_LN2_HI: vec2<u32> = vec2<u32>(0xFEE00000u, 0x3FE62E42u);
const D_LN2_LO: vec2<u32> = vec2<u32>(0x35793C76u, 0x3DEA39EFu);
const D_INVLN2: vec2<u32> = vec2<u32>(0x652B82FEu, 0x3FF71547u);
const D_P1: vec2<u32> = vec2<u32>(0x5555553Eu, 0x3FC55555u);
const D_P2: vec2<u32> = vec2<u32>(0x16BEBD93u, 0xBF66C16Cu);
const D_P3: vec2<u32> = vec2<u32>(0xAF25DE2Cu, 0x3F11566Au);
const D_P4: vec2<u32> = vec2<u32>(0xC5D26BF1u, 0xBEBBBD41u);
const D_P5: vec2<u32> = vec2<u32>(0x72BEA4D0u, 0x3E663769u);
const D_TWO: vec2<u32> = vec2<u32>(0x00000000u, 0x40000000u);
const D_SQRT2: vec2<u32> = vec2<u32>(0x667F3BCDu, 0x3FF6A09Eu);
const D_EXP_MAX: vec2<u32> = vec2<u32>(0xFEFA39EFu, 0x40862E42u);
const D_EXP_MIN: vec2<u32> = vec2<u32>(0xD52D3051u, 0xC0874910u);

// ---- double programs: fdlibm's log and exp as straight-line programs run by one loop ----
// A shader compiler inlines every call: written out, log and exp put some 25 software-double
// operations in a shader each, which SwiftShader (Chromium's software WebGPU) took 10 s to
// compile, and pow (both) crashed it. The same operations in the same order (the same bits)
// run from a program (op | a << 8 | b << 16 | d << 24 over 32 registers, the constants
// loaded at 12..) compile each operation once.
// ---- begin generated by tools/gen_f64_programs.py ----
const F64_LOG_PROG_N: u32 = 28u;
const F64_LOG_PROG = array<u32, 32>(
    0x000C0001u, 0x09000E00u, 0x02090003u,  // R0 = R0 sub F64_ONE; R9 = D_TWO add R0; R2 = R0 div R9
    0x03020202u, 0x04030302u, 0x09170402u,  // R3 = R2 mul R2; R4 = R3 mul R3; R9 = R4 mul D_LG6
    0x09091500u, 0x09090402u, 0x09091300u,  // R9 = D_LG4 add R9; R9 = R4 mul R9; R9 = D_LG2 add R9
    0x05090402u, 0x09180402u, 0x09091600u,  // R5 = R4 mul R9; R9 = R4 mul D_LG7; R9 = D_LG5 add R9
    0x09090402u, 0x09091400u, 0x09090402u,  // R9 = R4 mul R9; R9 = D_LG3 add R9; R9 = R4 mul R9
    0x09091200u, 0x06090302u, 0x07050600u,  // R9 = D_LG1 add R9; R6 = R3 mul R9; R7 = R6 add R5
    0x09000002u, 0x08090D02u, 0x09070800u,  // R9 = R0 mul R0; R8 = F64_HALF mul R9; R9 = R8 add R7
    0x09090202u, 0x0A100102u, 0x0A0A0900u,  // R9 = R2 mul R9; R10 = R1 mul D_LN2_LO; R10 = R9 add R10
    0x090A0801u, 0x09000901u, 0x0B0F0102u,  // R9 = R8 sub R10; R9 = R9 sub R0; R11 = R1 mul D_LN2_HI
    0x0B090B01u,                            // R11 = R11 sub R9
    0u, 0u, 0u, 0u);
const F64_EXP_PROG_N: u32 = 24u;
const F64_EXP_PROG = array<u32, 32>(
    0x09110002u, 0x090D0900u, 0x01090904u,  // R9 = R0 mul D_INVLN2; R9 = R9 add F64_HALF; R1 = floor(R9)
    0x090F0102u, 0x02090001u, 0x03100102u,  // R9 = R1 mul D_LN2_HI; R2 = R0 sub R9; R3 = R1 mul D_LN2_LO
    0x04030201u, 0x05040402u, 0x091D0502u,  // R4 = R2 sub R3; R5 = R4 mul R4; R9 = R5 mul D_P5
    0x09091C00u, 0x09090502u, 0x09091B00u,  // R9 = D_P4 add R9; R9 = R5 mul R9; R9 = D_P3 add R9
    0x09090502u, 0x09091A00u, 0x09090502u,  // R9 = R5 mul R9; R9 = D_P2 add R9; R9 = R5 mul R9
    0x06091900u, 0x09060502u, 0x07090401u,  // R6 = D_P1 add R9; R9 = R5 mul R6; R7 = R4 sub R9
    0x09070402u, 0x0A070E01u, 0x090A0903u,  // R9 = R4 mul R7; R10 = D_TWO sub R7; R9 = R9 div R10
    0x09090301u, 0x09020901u, 0x0B090C01u,  // R9 = R3 sub R9; R9 = R9 sub R2; R11 = F64_ONE sub R9
    0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
fn f64_regs() -> array<vec2<u32>, 32> {
    var r: array<vec2<u32>, 32>;
    r[12] = F64_ONE;
    r[13] = F64_HALF;
    r[14] = D_TWO;
    r[15] = D_LN2_HI;
    r[16] = D_LN2_LO;
    r[17] = D_INVLN2;
    r[18] = D_LG1;
    r[19] = D_LG2;
    r[20] = D_LG3;
    r[21] = D_LG4;
    r[22] = D_LG5;
    r[23] = D_LG6;
    r[24] = D_LG7;
    r[25] = D_P1;
    r[26] = D_P2;
    r[27] = D_P3;
    r[28] = D_P4;
    r[29] = D_P5;
    return r;
}
// ---- end generated ----

fn f64_run(r: ptr<function, array<vec2<u32>, 32>>, prog: array<u32, 32>, n: u32) {
    var p = prog;
    for (var i = 0u; i < n; i = i + 1u) {
        let ins = p[i];
        let op = ins & 0xFFu;
        let a = (*r)[(ins >> 8u) & 0xFFu];
        var b = (*r)[(ins >> 16u) & 0xFFu];
        var v: vec2<u32>;
        if (op <= 1u) {
            if (op == 1u) { b = f64_neg(b); }  // a - b is a + (-b), bit for bit (f64_sub)
            v = f64_add(a, b);
        } else if (op == 2u) {
            v = f64_mul(a, b);
        } else if (op == 3u) {
            v = f64_div(a, b);
        } else {
            v = f64_from_i32(bitcast<i32>(f64_wrap32(f64_floor(a))));
        }
        (*r)[ins >> 24u] = v;
    }
}

fn f64_log(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x)) { return F64_NAN; }
    if (f64_is_zero(x)) { return f64_inf(1u); }
    if (f64_sign(x) != 0u) { return F64_NAN; }
    if (f64_is_inf(x)) { return x; }
    let u = f64_unpack_sig(x);
    var k = bitcast<i32>(u.z) - 1023;
    var mm = vec2<u32>(u.x, (u.y & 0xFFFFFu) | 0x3FF00000u);  // [1, 2)
    if (f64_lt(D_SQRT2, mm)) {
        mm.y = (mm.y & 0xFFFFFu) | 0x3FE00000u;
        k = k + 1;
    }
    var r = f64_regs();
    r[0] = mm;
    r[1] = f64_from_i32(k);
    f64_run(&r, F64_LOG_PROG, F64_LOG_PROG_N);
    return r[11];
}

fn f64_exp(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x)) { return F64_NAN; }
    if (f64_lt(D_EXP_MAX, x)) { return f64_inf(0u); }
    if (f64_lt(x, D_EXP_MIN)) { return vec2<u32>(0u, 0u); }
    var r = f64_regs();
    r[0] = x;
    f64_run(&r, F64_EXP_PROG, F64_EXP_PROG_N);
    let k = bitcast<i32>(f64_wrap32(r[1]));
    let y = r[11];
    if (k >= -1021 && k <= 1023) { return vec2<u32>(y.x, y.y + (bitcast<u32>(k) << 20u)); }
    if (k > 1023) { return f64_mul(vec2<u32>(y.x, y.y + (bitcast<u32>(k - 1) << 20u)), D_TWO); }
    // subnormal results: scale in two steps
    let y2 = vec2<u32>(y.x, y.y + (bitcast<u32>(k + 1000) << 20u));
    return f64_mul(y2, vec2<u32>(0u, u32(1023 - 1000) << 20u));
}

// x^n for an integer n, |n| <= 64, by squaring
fn f64_powi(x: vec2<u32>, n_in: i32) -> vec2<u32> {
    var n = abs(n_in);
    var r = F64_ONE;
    var b = x;
    loop {
        if ((n & 1) != 0) { r = f64_mul(r, b); }
        n = n >> 1u;
        if (n == 0) { break; }
        b = f64_mul(b, b);
    }
    if (n_in < 0) { return f64_div(F64_ONE, r); }
    return r;
}

// pow of doubles following C99 for the special values: integer exponents up to 64 by
// squaring and quarter-integer ones through square roots (exact where the result is), the
// rest as exp(y log|x|) (relative error about 1e-14 for |y log x| up to 700)
fn f64_pow(x: vec2<u32>, y: vec2<u32>) -> vec2<u32> {
    if (f64_is_zero(y)) { return F64_ONE; }
    if (f64_eq(x, F64_ONE)) { return F64_ONE; }
    if (f64_is_nan(x) || f64_is_nan(y)) { return F64_NAN; }
    let yint = f64_is_integer(y);
    let yodd = yint && !f64_is_zero(f64_fmod(y, D_TWO));
    let ax = f64_abs(x);
    let xneg = f64_sign(x) != 0u;
    if (f64_is_inf(y)) {
        if (f64_eq(ax, F64_ONE)) { return F64_ONE; }
        if (f64_lt(F64_ONE, ax) == (f64_sign(y) == 0u)) { return f64_inf(0u); }
        return vec2<u32>(0u, 0u);
    }
    let ypos = f64_sign(y) == 0u;
    if (f64_is_inf(x)) {
        if (!xneg) { return select(vec2<u32>(0u, 0u), f64_inf(0u), ypos); }
        return select(vec2<u32>(0u, 0u), f64_inf(0u), ypos) | vec2<u32>(0u, select(0u, 0x80000000u, yodd));
    }
    if (f64_is_zero(x)) {
        let mag = select(vec2<u32>(0u, 0u), f64_inf(0u), !ypos);
        return mag | vec2<u32>(0u, select(0u, x.y & 0x80000000u, yodd));
    }
    if (xneg && !yint) { return F64_NAN; }
    var r: vec2<u32>;
    let y4 = f64_mul(y, vec2<u32>(0u, 0x40100000u));
    let small = f64_lt(f64_abs(y), vec2<u32>(0u, 0x40500000u));  // |y| < 64
    if (yint && small) {
        r = f64_powi(ax, bitcast<i32>(f64_wrap32(y)));
    } else if (small && f64_is_integer(y4)) {
        let fl = f64_floor(y);
        let q = bitcast<i32>(f64_wrap32(f64_sub(y4, f64_mul(fl, vec2<u32>(0u, 0x40100000u)))));  // 1, 2 or 3
        let s = f64_sqrt(ax);
        let qq = f64_sqrt(s);
        var part = s;
        if (q == 1) { part = qq; }
        if (q == 3) { part = f64_mul(s, qq); }
        r = f64_mul(f64_powi(ax, bitcast<i32>(f64_wrap32(fl))), part);
    } else {
        r = f64_exp(f64_mul(y, f64_log(ax)));
    }
    if (xneg && yodd) { r = f64_neg(r); }
    return r;
}

// float32 pow through the double one: one rounding of a result good to about 1e-14
fn sk_pow(x: f32, y: f32) -> f32 {
    return f64_to_f32(f64_pow(f64_from_f32(x), f64_from_f32(y)));
}

// ---- more functions of doubles, from log and exp (Kahan's forms for log1p and expm1) ----
fn f64_log1p(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x) || (f64_is_inf(x) && f64_sign(x) == 0u)) { return x; }
    let u = f64_add(F64_ONE, x);
    if (f64_eq(u, F64_ONE)) { return x; }
    if (f64_le(u, vec2<u32>(0u, 0u))) { return f64_log(u); }
    return f64_mul(f64_log(u), f64_div(x, f64_sub(u, F64_ONE)));
}

fn f64_expm1(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x)) { return x; }
    let u = f64_exp(x);
    if (f64_eq(u, F64_ONE)) { return x; }
    if (f64_is_inf(u)) { return u; }
    let um1 = f64_sub(u, F64_ONE);
    if (f64_eq(um1, f64_neg(F64_ONE))) { return um1; }
    return f64_mul(um1, f64_div(x, f64_log(u)));
}

fn f64_sigmoid(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x)) { return x; }
    let e = f64_exp(f64_neg(f64_abs(x)));
    if (f64_sign(x) == 0u) { return f64_div(F64_ONE, f64_add(F64_ONE, e)); }
    return f64_div(e, f64_add(F64_ONE, e));
}

fn f64_sinh(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x) || f64_is_inf(x)) { return x; }
    let a = f64_abs(x);
    var r: vec2<u32>;
    if (f64_lt(vec2<u32>(0u, 0x40800000u), a)) {  // |x| > 512: exp(|x|) / 2
        r = f64_mul(f64_exp(f64_sub(a, D_LN2_HI)), f64_exp(f64_neg(D_LN2_LO)));
    } else {
        let e = f64_expm1(a);
        r = f64_mul(F64_HALF, f64_add(e, f64_div(e, f64_add(e, F64_ONE))));
    }
    return vec2<u32>(r.x, r.y | (x.y & 0x80000000u));
}

fn f64_cosh(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x)) { return x; }
    let a = f64_abs(x);
    if (f64_lt(vec2<u32>(0u, 0x40800000u), a)) {
        return f64_mul(f64_exp(f64_sub(a, D_LN2_HI)), f64_exp(f64_neg(D_LN2_LO)));
    }
    let e = f64_exp(a);
    return f64_add(f64_mul(F64_HALF, e), f64_div(F64_HALF, e));
}

fn f64_tanh(x: vec2<u32>) -> vec2<u32> {
    if (f64_is_nan(x)) { return x; }
    let a = f64_abs(x);
    var r = F64_ONE;
    if (f64_lt(a, vec2<u32>(0u, 0x40360000u))) {  // |x| < 22
        let e = f64_expm1(f64_add(a, a));
        r = f64_div(e, f64_add(e, D_TWO));
    }
    return vec2<u32>(r.x, r.y | (x.y & 0x80000000u));
}
