// 2-d max and average pooling of (h, w, c, n) column-major blobs: one plane of H x W per
// (channel, sample). Windows are read h-major (dh outer, dw inner) and the first maximum
// wins, as the numpy backend, Chainer and PyTorch break ties; average pooling divides by
// the part of the window inside the padded input (Caffe/PyTorch count_include_pad).

extern "C" __global__ void max_pool_forward(const float* x, float* y, int* code, int H, int W, int OH,
                                            int OW, long long planes, int kh, int kw, int sh, int sw,
                                            int ph, int pw, int keep) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)OH * OW * planes) return;
    int oh = (int)(t % OH);
    long long r = t / OH;
    int ow = (int)(r % OW);
    long long p = r / OW;
    const float* xp = x + p * H * W;
    float best = 0.0f;
    int arg = 0;
    for (int dh = 0; dh < kh; ++dh) {
        int ih = oh * sh - ph + dh;
        for (int dw = 0; dw < kw; ++dw) {
            int iw = ow * sw - pw + dw;
            float v = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? xp[ih + (long long)H * iw] : -__int_as_float(0x7f800000);
            if ((dh == 0 && dw == 0) || v > best || (v != v && best == best)) {
                best = v;
                arg = dh * kw + dw;
            }
        }
    }
    y[t] = best;
    if (keep) code[t] = arg;
}

__device__ inline void covering(int i, int pad, int k, int s, int O, int* lo, int* hi) {
    int first = i + pad - k + 1;
    *lo = first <= 0 ? 0 : (first + s - 1) / s;
    int last = (i + pad) / s;
    *hi = last < O - 1 ? last : O - 1;
}

extern "C" __global__ void max_pool_backward(const float* dy, const int* code, float* dx, int H, int W,
                                             int OH, int OW, long long planes, int kh, int kw, int sh,
                                             int sw, int ph, int pw) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)H * W * planes) return;
    int ih = (int)(t % H);
    long long r = t / H;
    int iw = (int)(r % W);
    long long p = r / W;
    int oh0, oh1, ow0, ow1;
    covering(ih, ph, kh, sh, OH, &oh0, &oh1);
    covering(iw, pw, kw, sw, OW, &ow0, &ow1);
    float acc = 0.0f;
    for (int ow = ow0; ow <= ow1; ++ow) {
        int dw = iw + pw - ow * sw;
        for (int oh = oh0; oh <= oh1; ++oh) {
            int dh = ih + ph - oh * sh;
            long long o = oh + (long long)OH * (ow + (long long)OW * p);
            if (code[o] == dh * kw + dw) acc += dy[o];
        }
    }
    dx[t] = acc;
}

__device__ inline float divisor(int oh, int ow, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw) {
    int a = H + 2 * ph - oh * sh, b = W + 2 * pw - ow * sw;
    return (float)((a < kh ? a : kh) * (b < kw ? b : kw));
}

extern "C" __global__ void avg_pool_forward(const float* x, float* y, int H, int W, int OH, int OW,
                                            long long planes, int kh, int kw, int sh, int sw, int ph, int pw) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)OH * OW * planes) return;
    int oh = (int)(t % OH);
    long long r = t / OH;
    int ow = (int)(r % OW);
    long long p = r / OW;
    const float* xp = x + p * H * W;
    float acc = 0.0f;
    for (int dh = 0; dh < kh; ++dh) {
        int ih = oh * sh - ph + dh;
        for (int dw = 0; dw < kw; ++dw) {
            int iw = ow * sw - pw + dw;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) acc += xp[ih + (long long)H * iw];
        }
    }
    y[t] = acc / divisor(oh, ow, H, W, kh, kw, sh, sw, ph, pw);
}

extern "C" __global__ void avg_pool_backward(const float* dy, float* dx, int H, int W, int OH, int OW,
                                             long long planes, int kh, int kw, int sh, int sw, int ph, int pw) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)H * W * planes) return;
    int ih = (int)(t % H);
    long long r = t / H;
    int iw = (int)(r % W);
    long long p = r / W;
    int oh0, oh1, ow0, ow1;
    covering(ih, ph, kh, sh, OH, &oh0, &oh1);
    covering(iw, pw, kw, sw, OW, &ow0, &ow1);
    float acc = 0.0f;
    for (int ow = ow0; ow <= ow1; ++ow) {
        for (int oh = oh0; oh <= oh1; ++oh) {
            long long o = oh + (long long)OH * (ow + (long long)OW * p);
            acc += dy[o] / divisor(oh, ow, H, W, kh, kw, sh, sw, ph, pw);
        }
    }
    dx[t] = acc;
}
