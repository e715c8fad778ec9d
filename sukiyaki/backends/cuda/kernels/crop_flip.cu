// Per-sample crops of (h, w, c, n) images at corners (top[j], left[j]), mirrored left-right
// where flip[j]: out is (oh, ow, c, n) column-major.
extern "C" __global__ void crop_flip(const float* x, float* out, const int* top, const int* left,
                                     const bool* flip, int H, int W, int C, int OH, int OW, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)OH * OW * C * n) return;
    int oy = (int)(t % OH);
    long long r = t / OH;
    int ox = (int)(r % OW);
    r /= OW;
    int c = (int)(r % C);
    long long j = r / C;
    int sx = left[j] + (flip[j] ? OW - 1 - ox : ox);
    out[t] = x[(top[j] + oy) + (long long)H * (sx + (long long)W * (c + (long long)C * j))];
}
