// Elementwise arithmetic of same-shape, same-layout float operands, launched directly (the
// common case of the matrix library: CuPy's ufunc dispatch costs more than these kernels run
// on small matrices). IEEE arithmetic (NVRTC's defaults: no flush to zero, exact division and
// square root) and CUDA's libm, as CuPy's ufuncs: the same bits.

#define BINARY(name, T, expr)                                                                  \
    extern "C" __global__ void name(const T* x, const T* y, T* z, unsigned long long n) {      \
        unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;                \
        for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; \
             i < n; i += stride) {                                                             \
            T a = x[i], b = y[i];                                                              \
            z[i] = expr;                                                                       \
        }                                                                                      \
    }

#define UNARY(name, T, expr)                                                                   \
    extern "C" __global__ void name(const T* x, T* z, unsigned long long n) {                  \
        unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;                \
        for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; \
             i < n; i += stride) {                                                             \
            T a = x[i];                                                                        \
            z[i] = expr;                                                                       \
        }                                                                                      \
    }

BINARY(add_float32, float, a + b)
BINARY(sub_float32, float, a - b)
BINARY(mul_float32, float, a * b)
BINARY(div_float32, float, a / b)
BINARY(add_float64, double, a + b)
BINARY(sub_float64, double, a - b)
BINARY(mul_float64, double, a * b)
BINARY(div_float64, double, a / b)
UNARY(neg_float32, float, -a)
UNARY(exp_float32, float, expf(a))
UNARY(log_float32, float, logf(a))
UNARY(sqrt_float32, float, sqrtf(a))
UNARY(abs_float32, float, fabsf(a))
UNARY(neg_float64, double, -a)
UNARY(exp_float64, double, exp(a))
UNARY(log_float64, double, log(a))
UNARY(sqrt_float64, double, sqrt(a))
UNARY(abs_float64, double, fabs(a))
