// Per-channel sums of float32 data seen as (inner, C, outer), column-major: element (i, c, o)
// at i + inner * (c + C * o); out[c] = the sum over every i and o (a convolution's bias
// gradient). Two passes and no atomics, so the bits are the same on every run: grid (C, P)
// writes P partial sums per channel, then one thread per channel adds its P partials in order.

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// grid (C, P), blockDim.x a multiple of 32: partial[c * P + p] = the sum of channel c over
// the images o = p, p + P, p + 2P, ...
extern "C" __global__ void channel_sum_partial(const float* x, float* partial, unsigned inner, unsigned C,
                                               unsigned outer) {
    unsigned c = blockIdx.x, p = blockIdx.y, P = gridDim.y;
    float s = 0.0f;
    for (unsigned o = p; o < outer; o += P) {
        const float* plane = x + (size_t)inner * (c + (size_t)C * o);
        for (unsigned i = threadIdx.x; i < inner; i += blockDim.x) s += plane[i];
    }
    __shared__ float warps[32];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = warp_sum(threadIdx.x < (blockDim.x >> 5) ? warps[threadIdx.x] : 0.0f);
        if (threadIdx.x == 0) partial[(size_t)c * P + p] = s;
    }
}

// the same, four values a load: inner4 = inner / 4 (inner a multiple of 4, x on a 16-byte boundary)
extern "C" __global__ void channel_sum_partial4(const float4* x, float* partial, unsigned inner4, unsigned C,
                                                unsigned outer) {
    unsigned c = blockIdx.x, p = blockIdx.y, P = gridDim.y;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (unsigned o = p; o < outer; o += P) {
        const float4* plane = x + (size_t)inner4 * (c + (size_t)C * o);
        for (unsigned i = threadIdx.x; i < inner4; i += blockDim.x) {
            float4 v = plane[i];
            s0 += v.x;
            s1 += v.y;
            s2 += v.z;
            s3 += v.w;
        }
    }
    float s = (s0 + s1) + (s2 + s3);
    __shared__ float warps[32];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = warp_sum(threadIdx.x < (blockDim.x >> 5) ? warps[threadIdx.x] : 0.0f);
        if (threadIdx.x == 0) partial[(size_t)c * P + p] = s;
    }
}

// one thread per channel: out[c] = partial[c * P] + ... + partial[c * P + P - 1], in that order
extern "C" __global__ void channel_sum_finish(const float* partial, float* out, unsigned C, unsigned P) {
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (unsigned p = 0; p < P; ++p) s += partial[(size_t)c * P + p];
    out[c] = s;
}
