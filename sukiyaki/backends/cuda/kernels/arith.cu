// Elementwise power as the numpy backend (and JavaScript) computes it: an integer exponent
// of a double computed by squaring, so that 3 ^ 1 is 3 and truncates to 3 (CUDA's pow may
// be an ulp off); compiled with -ftz=false -prec-div=true.

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
