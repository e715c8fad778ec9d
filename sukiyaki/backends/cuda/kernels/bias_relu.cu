// Elementwise kernels of float32 activations, contiguous, four values a load where the Python
// side found them on a 16-byte boundary (n4 = n / 4 float4s; the last n % 4 values one by one).

// y = x where x >= 0 or x is NaN, else 0 (NaN propagates, as numpy's maximum and torch's relu)
extern "C" __global__ void relu_forward4(const float* x, float* y, unsigned long long n) {
    unsigned long long n4 = n / 4, stride = (unsigned long long)gridDim.x * blockDim.x;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 v = x4[i];
        v.x = v.x < 0.0f ? 0.0f : v.x;
        v.y = v.y < 0.0f ? 0.0f : v.y;
        v.z = v.z < 0.0f ? 0.0f : v.z;
        v.w = v.w < 0.0f ? 0.0f : v.w;
        y4[i] = v;
    }
    for (unsigned long long i = 4 * n4 + (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

// dx = dy where y > 0, else 0 (y: the relu's output)
extern "C" __global__ void relu_backward4(const float* dy, const float* y, float* dx, unsigned long long n) {
    unsigned long long n4 = n / 4, stride = (unsigned long long)gridDim.x * blockDim.x;
    const float4* d4 = reinterpret_cast<const float4*>(dy);
    const float4* y4 = reinterpret_cast<const float4*>(y);
    float4* o4 = reinterpret_cast<float4*>(dx);
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 d = d4[i], v = y4[i];
        d.x = v.x > 0.0f ? d.x : 0.0f;
        d.y = v.y > 0.0f ? d.y : 0.0f;
        d.z = v.z > 0.0f ? d.z : 0.0f;
        d.w = v.w > 0.0f ? d.w : 0.0f;
        o4[i] = d;
    }
    for (unsigned long long i = 4 * n4 + (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// y (inner, C, outer) += b[c], in place; grid (C * outer, chunks): block x is plane (c, o)
extern "C" __global__ void bias_add_planes(float* y, const float* b, unsigned inner, unsigned C) {
    float v = b[blockIdx.x % C];
    float* plane = y + (size_t)inner * blockIdx.x;
    for (unsigned i = blockIdx.y * blockDim.x + threadIdx.x; i < inner; i += gridDim.y * blockDim.x) plane[i] += v;
}
