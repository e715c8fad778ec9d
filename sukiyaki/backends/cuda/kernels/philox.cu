// Philox4x32-10 (Salmon et al. 2011), bit-identical to sukiyaki/backends/numpy/philox.py.
// out is (per_sample, n) column-major: element [e, j] is word e % 4 of the block
// (e / 4, ids[j], iteration, 0) under key (k0, k1), as the float (w >> 8) * 2^-24.

__device__ inline void philox_uniform_at(const unsigned int* ids, float* out, unsigned int k0, unsigned int k1,
                                         unsigned int iteration, long long per_sample, long long n) {
    long long blocks = (per_sample + 3) / 4;
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= blocks * n) return;
    long long j = t / blocks, b = t % blocks;
    unsigned int c0 = (unsigned int)b, c1 = ids[j], c2 = iteration, c3 = 0u;
    unsigned int key0 = k0, key1 = k1;
    for (int r = 0; r < 10; ++r) {
        unsigned int hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        unsigned int hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ key0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ key1;
        c3 = lo0;
        key0 += 0x9E3779B9u;
        key1 += 0xBB67AE85u;
    }
    unsigned int w[4] = {c0, c1, c2, c3};
    for (int q = 0; q < 4; ++q) {
        long long e = 4 * b + q;
        if (e < per_sample) out[e + per_sample * j] = (float)(w[q] >> 8) * 5.9604644775390625e-08f;
    }
}

extern "C" __global__ void philox_uniform(const unsigned int* ids, float* out, unsigned int k0,
                                          unsigned int k1, unsigned int iteration,
                                          long long per_sample, long long n) {
    philox_uniform_at(ids, out, k0, k1, iteration, per_sample, n);
}

// The same with the iteration word read from device memory (a captured CUDA graph's step counter).
extern "C" __global__ void philox_uniform_dev(const unsigned int* ids, float* out, unsigned int k0,
                                              unsigned int k1, const unsigned int* iteration,
                                              long long per_sample, long long n) {
    philox_uniform_at(ids, out, k0, k1, *iteration, per_sample, n);
}
