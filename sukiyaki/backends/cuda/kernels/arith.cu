// Elementwise division and power as the numpy backend (and JavaScript) compute them:
// IEEE-rounded, subnormals kept (compiled with -ftz=false -prec-div=true), and an integer
// exponent of a double computed by squaring, so that 3 ^ 1 is 3 and truncates to 3.

template <typename T> __device__ inline T sk_div(T x, T y) { return x / y; }

__device__ inline float sk_pow(float x, float y) { return powf(x, y); }

__device__ inline double sk_pow(double x, double y) {
    if (y == floor(y) && fabs(y) <= 64.0 && x == x) {
        long long e = (long long)fabs(y);
        double r = 1.0, b = x;
        while (e) {
            if (e & 1) r *= b;
            b *= b;
            e >>= 1;
        }
        return y < 0 ? 1.0 / r : r;
    }
    return pow(x, y);
}
