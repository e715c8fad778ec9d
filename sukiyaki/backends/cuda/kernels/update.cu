// Fused optimizer updates over a flat parameter buffer, one thread per element. The
// arithmetic is that of sukiyaki/backends/numpy/update.py, step by step, with explicit
// round-to-nearest operations so that no multiply-add is contracted: the same bits. Each rule
// comes twice: with the learning rate as an argument, and (``_dev``) read from device memory, so
// that a captured CUDA graph takes this step's rate without being captured again.

__device__ inline float decayed(float w, float g, float wd) {
    return wd != 0.0f ? __fadd_rn(g, __fmul_rn(w, wd)) : g;
}

__device__ inline void sgd_at(float* w, const float* g, float lr, float wd, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    w[i] = __fadd_rn(w[i], __fmul_rn(decayed(w[i], g[i], wd), -lr));
}

__device__ inline void momentum_at(float* w, const float* g, float* v, float lr, float momentum, float wd,
                                   long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float t = __fmul_rn(decayed(w[i], g[i], wd), -lr);
    float vi = __fadd_rn(__fmul_rn(v[i], momentum), t);
    v[i] = vi;
    w[i] = __fadd_rn(w[i], vi);
}

__device__ inline void adam_at(float* w, const float* g, float* m, float* v, float lr_t, float b1, float b2,
                               float c1, float c2, float eps, float wd, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gd = decayed(w[i], g[i], wd);
    float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(gd, c1));
    float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(gd, gd), c2));
    m[i] = mi;
    v[i] = vi;
    float u = __fdiv_rn(mi, __fadd_rn(__fsqrt_rn(vi), eps));
    w[i] = __fadd_rn(w[i], __fmul_rn(u, -lr_t));
}

extern "C" __global__ void sgd_update(float* w, const float* g, float lr, float wd, long long n) {
    sgd_at(w, g, lr, wd, n);
}

extern "C" __global__ void sgd_update_dev(float* w, const float* g, const float* lr, float wd, long long n) {
    sgd_at(w, g, *lr, wd, n);
}

extern "C" __global__ void momentum_update(float* w, const float* g, float* v, float lr, float momentum,
                                           float wd, long long n) {
    momentum_at(w, g, v, lr, momentum, wd, n);
}

extern "C" __global__ void momentum_update_dev(float* w, const float* g, float* v, const float* lr,
                                               float momentum, float wd, long long n) {
    momentum_at(w, g, v, *lr, momentum, wd, n);
}

extern "C" __global__ void adam_update(float* w, const float* g, float* m, float* v, float lr_t, float b1,
                                       float b2, float c1, float c2, float eps, float wd, long long n) {
    adam_at(w, g, m, v, lr_t, b1, b2, c1, c2, eps, wd, n);
}

extern "C" __global__ void adam_update_dev(float* w, const float* g, float* m, float* v, const float* lr_t,
                                           float b1, float b2, float c1, float c2, float eps, float wd,
                                           long long n) {
    adam_at(w, g, m, v, *lr_t, b1, b2, c1, c2, eps, wd, n);
}
