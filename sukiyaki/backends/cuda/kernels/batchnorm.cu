// Batch normalisation of float32 data seen as (inner, C, outer), column-major: element
// (i, c, o) at i + inner * (c + C * o); channel c is normalised over every i and o. Per-
// channel sums are taken in double (each block's share added with an atomic), so the
// batch statistics are those of the exact sums rounded once. Element counts fit 32 bits
// (the Python side checks).

__device__ inline double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// the block's sums of a and b, in thread 0 (blockDim.x a multiple of 32, at most 1024)
__device__ inline void block_sum2(double& a, double& b) {
    __shared__ double sa[32], sb[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) { sa[warp] = a; sb[warp] = b; }
    __syncthreads();
    if (warp == 0) {
        a = warp_sum(lane < warps ? sa[lane] : 0.0);
        b = warp_sum(lane < warps ? sb[lane] : 0.0);
    }
}

// grid (C, S): sums[c] += sum of x, sums[C + c] += sum of x^2 over block y's share of channel c
extern "C" __global__ void bn_sums(const float* x, double* sums, unsigned inner, unsigned C, unsigned count) {
    unsigned c = blockIdx.x;
    double s = 0.0, q = 0.0;
    for (unsigned j = blockIdx.y * blockDim.x + threadIdx.x; j < count; j += gridDim.y * blockDim.x) {
        unsigned o = j / inner, i = j - o * inner;
        double v = x[i + (size_t)inner * (c + (size_t)C * o)];
        s += v;
        q += v * v;
    }
    block_sum2(s, q);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[c], s);
        atomicAdd(&sums[C + c], q);
    }
}

// grid (C, S): sums[c] += sum of dy, sums[C + c] += sum of dy * x
extern "C" __global__ void bn_grad_sums(const float* dy, const float* x, double* sums, unsigned inner, unsigned C,
                                        unsigned count) {
    unsigned c = blockIdx.x;
    double s = 0.0, q = 0.0;
    for (unsigned j = blockIdx.y * blockDim.x + threadIdx.x; j < count; j += gridDim.y * blockDim.x) {
        unsigned o = j / inner, i = j - o * inner;
        size_t e = i + (size_t)inner * (c + (size_t)C * o);
        double g = dy[e];
        s += g;
        q += g * (double)x[e];
    }
    block_sum2(s, q);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[c], s);
        atomicAdd(&sums[C + c], q);
    }
}

// The same sums with whole planes: grid (C, S), block y walks the images o = y, y + S, ... of
// channel c, its threads the plane's inner values (no division per element; for inner >= 128)
extern "C" __global__ void bn_sums_planes(const float* x, double* sums, unsigned inner, unsigned C,
                                          unsigned outer) {
    unsigned c = blockIdx.x;
    double s = 0.0, q = 0.0;
    for (unsigned o = blockIdx.y; o < outer; o += gridDim.y) {
        const float* plane = x + (size_t)inner * (c + (size_t)C * o);
        for (unsigned i = threadIdx.x; i < inner; i += blockDim.x) {
            double v = plane[i];
            s += v;
            q += v * v;
        }
    }
    block_sum2(s, q);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[c], s);
        atomicAdd(&sums[C + c], q);
    }
}

extern "C" __global__ void bn_grad_sums_planes(const float* dy, const float* x, double* sums, unsigned inner,
                                               unsigned C, unsigned outer) {
    unsigned c = blockIdx.x;
    double s = 0.0, q = 0.0;
    for (unsigned o = blockIdx.y; o < outer; o += gridDim.y) {
        size_t base = (size_t)inner * (c + (size_t)C * o);
        for (unsigned i = threadIdx.x; i < inner; i += blockDim.x) {
            double g = dy[base + i];
            s += g;
            q += g * (double)x[base + i];
        }
    }
    block_sum2(s, q);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[c], s);
        atomicAdd(&sums[C + c], q);
    }
}

// bn_apply by planes: grid (C * outer, chunks); block x is plane (c, o), its threads a chunk of
// the plane's inner values (for inner >= 128: the channel's constants read once a thread)
extern "C" __global__ void bn_apply_planes(const float* x, float* y, const float* mean, const float* inv_std,
                                           const float* gamma, const float* beta, unsigned inner, unsigned C) {
    unsigned c = blockIdx.x % C;
    float mu = mean[c], is = inv_std[c], g = gamma[c], b = beta[c];
    size_t base = (size_t)inner * blockIdx.x;
    for (unsigned i = blockIdx.y * blockDim.x + threadIdx.x; i < inner; i += gridDim.y * blockDim.x)
        y[base + i] = (x[base + i] - mu) * is * g + b;
}

// bn_backward by planes (train: batch statistics), grid as bn_apply_planes
extern "C" __global__ void bn_backward_planes(const float* dy, const float* x, float* dx, const float* mean,
                                              const float* inv_std, const float* gamma, const float* dgamma,
                                              const float* dbeta, float inv_m, int train, unsigned inner,
                                              unsigned C) {
    unsigned c = blockIdx.x % C;
    float is = inv_std[c], k = gamma[c] * is, mu = mean[c], db = dbeta[c] * inv_m, dg = dgamma[c];
    size_t base = (size_t)inner * blockIdx.x;
    for (unsigned i = blockIdx.y * blockDim.x + threadIdx.x; i < inner; i += gridDim.y * blockDim.x) {
        size_t e = base + i;
        if (train) {
            float xhat = (x[e] - mu) * is;
            dx[e] = k * (dy[e] - db - xhat * dg * inv_m);
        } else {
            dx[e] = k * dy[e];
        }
    }
}

// y = (x - mean) * inv_std * gamma + beta, per channel
extern "C" __global__ void bn_apply(const float* x, float* y, const float* mean, const float* inv_std,
                                    const float* gamma, const float* beta, unsigned inner, unsigned C, unsigned n) {
    for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        unsigned c = (e / inner) % C;
        float xhat = (x[e] - mean[c]) * inv_std[c];
        y[e] = xhat * gamma[c] + beta[c];
    }
}

// dx of batch statistics: gamma * inv_std * (dy - dbeta / m - xhat * dgamma / m); of fixed
// statistics (train == 0): gamma * inv_std * dy
extern "C" __global__ void bn_backward(const float* dy, const float* x, float* dx, const float* mean,
                                       const float* inv_std, const float* gamma, const float* dgamma,
                                       const float* dbeta, float inv_m, int train, unsigned inner, unsigned C,
                                       unsigned n) {
    for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        unsigned c = (e / inner) % C;
        float k = gamma[c] * inv_std[c];
        if (train) {
            float xhat = (x[e] - mean[c]) * inv_std[c];
            dx[e] = k * (dy[e] - dbeta[c] * inv_m - xhat * dgamma[c] * inv_m);
        } else {
            dx[e] = k * dy[e];
        }
    }
}

// per channel, from sums (x, then x^2): mean, biased var, inv_std = 1 / sqrt(var + eps); and,
// where update, r = decay * r + (1 - decay) * statistic (the variance unbiased: times m / (m - 1))
extern "C" __global__ void bn_finalize(const double* sums, float* mean, float* var, float* inv_std,
                                       float* running_mean, float* running_var, double m, double eps,
                                       float decay, float unbias, int update, unsigned C) {
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double mu = sums[c] / m;
    double v = fmax(sums[C + c] / m - mu * mu, 0.0);
    mean[c] = (float)mu;
    var[c] = (float)v;
    inv_std[c] = (float)(1.0 / sqrt(v + eps));
    if (update) {
        running_mean[c] = running_mean[c] * decay + (1.0f - decay) * (float)mu;
        running_var[c] = running_var[c] * decay + (1.0f - decay) * unbias * (float)v;
    }
}

// per channel, from sums (dy, then dy * x): dbeta = sum dy, dgamma = (sum dy x - mean sum dy) inv_std
extern "C" __global__ void bn_grad_finalize(const double* sums, const float* mean, const float* inv_std,
                                            float* dgamma, float* dbeta, unsigned C) {
    unsigned c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    dbeta[c] = (float)sums[c];
    dgamma[c] = (float)((sums[C + c] - (double)mean[c] * sums[c]) * (double)inv_std[c]);
}
