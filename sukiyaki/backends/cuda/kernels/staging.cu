// Operands of the tensor-core products, staged from and back to the backend's float32 blobs:
// bfloat16 storage (the bf16 precision mode) and the channels-last layout (cuDNN's NHWC).
//
// A blob is seen as (S, C, N) column-major: S spatial values (h fastest, then w), C channels,
// N samples (for a filter: kh * kw, in channels / group, out channels). Channels-last is the
// same values as (C, S, N). Rounding to bfloat16 is to nearest, ties to even, as
// sukiyaki.nn.params.float32_to_bf16 and PyTorch; a NaN stays a (quiet) NaN.

typedef unsigned short bf16_bits;

__device__ __forceinline__ bf16_bits to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_bits)((u >> 16) | 0x40u);
    return (bf16_bits)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float from_bf16(bf16_bits b) { return __uint_as_float((unsigned)b << 16); }

__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(bf16_bits* p, float v) { *p = to_bf16(v); }
__device__ __forceinline__ float get(const float* p) { return *p; }
__device__ __forceinline__ float get(const bf16_bits* p) { return from_bf16(*p); }

// (S, C, N) float32 -> (C, S, N) of T, through 32 x 32 tiles in shared memory (both sides
// coalesced). Grid (ceil(S / 32), ceil(C / 32), samples of this launch), block (32, 8).
template <typename T>
__device__ void to_channels_last(const float* x, T* y, unsigned S, unsigned C) {
    __shared__ float tile[32][33];
    size_t plane = (size_t)S * C * blockIdx.z;
    unsigned s0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    for (unsigned j = threadIdx.y; j < 32; j += 8) {
        unsigned s = s0 + threadIdx.x, c = c0 + j;
        if (s < S && c < C) tile[j][threadIdx.x] = x[plane + (size_t)c * S + s];
    }
    __syncthreads();
    for (unsigned j = threadIdx.y; j < 32; j += 8) {
        unsigned c = c0 + threadIdx.x, s = s0 + j;
        if (s < S && c < C) put(y + plane + (size_t)s * C + c, tile[threadIdx.x][j]);
    }
}

// (C, S, N) of T -> (S, C, N) float32, plus bias[c] where bias is given (the convolution's).
template <typename T>
__device__ void from_channels_last(const T* y, float* x, const float* bias, unsigned S, unsigned C) {
    __shared__ float tile[32][33];
    size_t plane = (size_t)S * C * blockIdx.z;
    unsigned s0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    for (unsigned j = threadIdx.y; j < 32; j += 8) {
        unsigned c = c0 + threadIdx.x, s = s0 + j;
        if (s < S && c < C) tile[threadIdx.x][j] = get(y + plane + (size_t)s * C + c);
    }
    __syncthreads();
    for (unsigned j = threadIdx.y; j < 32; j += 8) {
        unsigned s = s0 + threadIdx.x, c = c0 + j;
        if (s < S && c < C) x[plane + (size_t)c * S + s] = tile[j][threadIdx.x] + (bias ? bias[c] : 0.0f);
    }
}

extern "C" __global__ void to_cl_bf16(const float* x, bf16_bits* y, unsigned S, unsigned C) {
    to_channels_last(x, y, S, C);
}
extern "C" __global__ void to_cl_f32(const float* x, float* y, unsigned S, unsigned C) {
    to_channels_last(x, y, S, C);
}
extern "C" __global__ void from_cl_bf16(const bf16_bits* y, float* x, const float* bias, unsigned S, unsigned C) {
    from_channels_last(y, x, bias, S, C);
}
extern "C" __global__ void from_cl_f32(const float* y, float* x, const float* bias, unsigned S, unsigned C) {
    from_channels_last(y, x, bias, S, C);
}

// Same layout, float32 -> bfloat16 (n values; grid-stride loop).
extern "C" __global__ void f32_to_bf16(const float* x, bf16_bits* y, unsigned long long n) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = to_bf16(x[i]);
}

// Same layout, bfloat16 -> float32, plus bias[(i / inner) % C] where bias is given.
extern "C" __global__ void bf16_to_f32(const bf16_bits* y, float* x, const float* bias, unsigned long long inner,
                                       unsigned C, unsigned long long n) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = from_bf16(y[i]) + (bias ? bias[(i / inner) % C] : 0.0f);
}
