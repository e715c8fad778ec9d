// ---- philox.wgsl: Philox4x32-10 (Salmon et al. 2011), bit-identical to
// sukiyaki/backends/numpy/philox.py. WGSL has no 32x32 -> 64-bit multiply: the high word
// of each product is built from 16-bit halves.

fn philox_mulhi(a: u32, b: u32) -> u32 {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

// the four output words of counter c under key (k0, k1)
fn philox4x32(c_in: vec4<u32>, k0_in: u32, k1_in: u32) -> vec4<u32> {
    var c = c_in;
    var k0 = k0_in;
    var k1 = k1_in;
    for (var r = 0u; r < 10u; r = r + 1u) {
        let hi0 = philox_mulhi(0xD2511F53u, c.x);
        let lo0 = 0xD2511F53u * c.x;
        let hi1 = philox_mulhi(0xCD9E8D57u, c.z);
        let lo1 = 0xCD9E8D57u * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0);
        k0 = k0 + 0x9E3779B9u;
        k1 = k1 + 0xBB67AE85u;
    }
    return c;
}

// a word as a float32 uniform in [0, 1): (bits >> 8) * 2^-24, exact
fn philox_uniform01(w: u32) -> f32 {
    return f32(w >> 8u) * 5.9604644775390625e-08f;
}
