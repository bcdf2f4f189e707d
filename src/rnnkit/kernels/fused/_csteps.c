/* rnnkit's compiled step math for the fused CPU scans (float32).
 *
 * One call per time step does all the elementwise work of an LSTM, LayerNorm-LSTM, GRU
 * or LayerNorm-GRU step (gates, layer norms, cell update, zoneout; forward or backward) in one pass
 * over the rows, instead of the 5-20 small torch ops the pure-PyTorch scan issues. The
 * GEMMs stay in torch (oneDNN); Python calls  v = h_{t-1} W_hh^T  then
 * <cell>_fwd(ctx, v, t, ...), and going back <cell>_bwd(ctx, t, ...) then  dv W_hh.
 *
 * No dependency but libm: the library is built with the system C compiler on first
 * use (rnnkit/kernels/fused/_csteps.py) and works with any torch version. Built with
 * -O3 -fopenmp-simd (vectorised loops, no OpenMP runtime) and no fast-math: exp is our
 * own polynomial (vectorisable, within 2 ulp), everything else is IEEE.
 *
 * Layouts: every buffer is contiguous (T or S, B, features); a step works on the live
 * rows 0..n-1 of its (B, features) slab. Shapes: T time, B batch, H hidden, G = 4H.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define API __attribute__((visibility("default")))

/* ------------------------------------------------------------------ activations */
/* e^x for x in [-87, 88] (clamped outside; NaN stays NaN): 2^k e^r with |r| <= ln2/2 and a
 * degree-6 Taylor polynomial (relative error < 2e-7); branch-free so that gcc/clang
 * vectorise it. */
static inline float exp_(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* k = round(x / ln 2): adding and subtracting 1.5 * 2^23 rounds to an integer
     * (floorf does not vectorise without -fno-trapping-math) */
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.42860682030941723212e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666671633720398f +
              r * (0.0416666679084300995f + r * (0.00833333376795053482f +
              r * 0.00138888892251998186f)))));
    union { int32_t i; float f; } scale = {((int32_t)k + 127) << 23};  /* 2^k */
    return p * scale.f;
}

static inline float tanh_(float x) { return 2.0f / (1.0f + exp_(-2.0f * x)) - 1.0f; }
/* An LSTM gate's activation, k = 1: sigmoid(x); k = 2 (the g block): tanh(x) =
 * 2 sigmoid(2x) - 1. One exp per element over all 4H, no branch. */
static inline float gate_(float x, float k) { return k / (1.0f + exp_(-k * x)) - (k - 1.0f); }
#define GATE_K(j, H) (((j) >= 2 * (H) && (j) < 3 * (H)) ? 2.0f : 1.0f)

/* mean and 1/sqrt(var + eps) of x[0..G-1] (two passes, biased variance, as torch). */
static inline void moments(const float* x, int G, float eps, float* mu, float* rs) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < G; j++) s += x[j];
    float m = s / (float)G, q = 0.0f;
#pragma omp simd reduction(+ : q)
    for (int j = 0; j < G; j++) q += (x[j] - m) * (x[j] - m);
    *mu = m;
    *rs = 1.0f / sqrtf(q / (float)G + eps);
}

/* dx = rs (gy - mean(gy) - xh mean(gy xh)), gy = dy * gain, xh = (x - mu) rs: the input
 * gradient of layer_norm(x) * gain + bias (aten's native_layer_norm_backward); and the
 * gain's and bias's gradients of this row added to sg += dy xh, sb += dy. */
static inline void ln_grad(const float* restrict dy, const float* restrict x,
                           const float* restrict gain, float mu, float rs, int G,
                           float* restrict dx, float* restrict sg, float* restrict sb) {
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int j = 0; j < G; j++) {
        float xh = (x[j] - mu) * rs, gy = dy[j] * gain[j];
        a += gy;
        b += gy * xh;
        sg[j] += dy[j] * xh;
        sb[j] += dy[j];
    }
    a /= (float)G;
    b /= (float)G;
#pragma omp simd
    for (int j = 0; j < G; j++) {
        float xh = (x[j] - mu) * rs;
        dx[j] = rs * (dy[j] * gain[j] - a - xh * b);
    }
}

/* torch.lerp(a, b, w) = a + w (b - a), in torch's form: exact at w = 0 and w = 1 (a zoneout
 * keep mask must give exactly the previous state). */
static inline float lerp_(float a, float b, float w) {
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

/* Zoneout of the live rows' fresh state s~ (n, H) towards the previous state p:
 * s <- lerp(s~, p, w), w the (n, H) keep mask of the step, or the rate in evaluation. */
static void zone_(float* restrict s, const float* restrict p, const float* restrict w,
                  float rate, int64_t n, int64_t H) {
    if (w) {
#pragma omp simd
        for (int64_t j = 0; j < n * H; j++) s[j] = lerp_(s[j], p[j], w[j]);
    } else if (rate != 0.0f) {
#pragma omp simd
        for (int64_t j = 0; j < n * H; j++) s[j] = lerp_(s[j], p[j], rate);
    }
}

/* Split a zoned state's gradient d (n, H) into its fresh part (returned in d) and its
 * kept part (into keep): keep = w d, d <- d - w d. Without zoneout keep = 0. */
static void split_(float* restrict d, float* restrict keep, const float* restrict w,
                   float rate, int64_t n, int64_t H) {
    if (w) {
#pragma omp simd
        for (int64_t j = 0; j < n * H; j++) {
            keep[j] = d[j] * w[j];
            d[j] -= keep[j];
        }
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n * H; j++) {
            keep[j] = d[j] * rate;
            d[j] -= keep[j];
        }
    }
}

static inline const float* at_(const float* z, int64_t t, int64_t B, int64_t H) {
    return z ? z + (size_t)t * B * H : NULL;
}

/* ------------------------------------------------------------------ LayerNorm-LSTM */
typedef struct {
    int64_t B, H;
    float eps, zh_rate, zc_rate, pad_;
    const float *XP, *h0, *c0, *g_hh, *b_hh, *g_c, *b_c, *ZH, *ZC;
    float *V, *A, *MU, *RS, *CT, *MUC, *RSC, *TC, *C, *Y;
    /* backward */
    const float* dY;
    float *dA, *dV, *dLC, *dh, *dc, *keep_h, *keep_c;
    /* the gains' and biases' gradients, [g_hh (4H), b_hh (4H), g_c (H), b_c (H)]: summed
     * over a step's rows in float32 (part), then over the steps in float64 (acc) */
    float* part;
    double* acc;
    float* dct; /* (H,) scratch: the gradient of c~ through LN(c~) */
} ln_lstm_t;

/* Forward step t (scratch row s) from v = h_{t-1} W_hh^T (n, 4H), contiguous. */
API void ln_lstm_fwd(const ln_lstm_t* P, const float* v, int64_t t, int64_t s, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 4 * H;
    const float eps = P->eps;
    const float* restrict hp = t ? P->Y + (size_t)(t - 1) * B * H : P->h0;
    const float* restrict cp = t ? P->C + (size_t)(t - 1) * B * H : P->c0;
    const float *restrict g_hh = P->g_hh, *restrict b_hh = P->b_hh;
    const float *restrict g_c = P->g_c, *restrict b_c = P->b_c;
    float* restrict y = P->Y + (size_t)t * B * H;
    float* c = P->C + (size_t)t * B * H;  /* may be CT (no zoneout) */
    for (int64_t r = 0; r < n; r++) {
        const float* restrict vr = v + r * G;
        const float* restrict xp = P->XP + ((size_t)t * B + r) * G;
        const size_t ss = (size_t)s * B + r;
        float *restrict Vr = P->V + ss * G, *restrict a = P->A + ss * G;
        memcpy(Vr, vr, sizeof(float) * G);
        float mu, rs;
        moments(vr, G, eps, &mu, &rs);
        P->MU[ss] = mu;
        P->RS[ss] = rs;
#pragma omp simd
        for (int64_t j = 0; j < G; j++)
            a[j] = gate_((vr[j] - mu) * rs * g_hh[j] + b_hh[j] + xp[j], GATE_K(j, H));
        float* restrict ct = P->CT + ss * H;
        const float *restrict i = a, *restrict f = a + H, *restrict g = a + 2 * H;
        const float* restrict c_prev = cp + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) ct[j] = f[j] * c_prev[j] + i[j] * g[j];
        moments(ct, H, eps, &mu, &rs);
        P->MUC[ss] = mu;
        P->RSC[ss] = rs;
        float *restrict tc = P->TC + ss * H, *restrict yr = y + r * H;
        const float* restrict o = a + 3 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float th = tanh_((ct[j] - mu) * rs * g_c[j] + b_c[j]);
            tc[j] = th;
            yr[j] = o[j] * th;
        }
        if (c + r * H != ct) memcpy(c + r * H, ct, sizeof(float) * H);  /* C is CT: no copy */
    }
    zone_(y, hp, at_(P->ZH, t, B, H), P->zh_rate, n, H);
    zone_(c, cp, at_(P->ZC, t, B, H), P->zc_rate, n, H);
}

/* Backward step t (block row k) for the live rows: reads dh (gradient of h_t, dY[t]
 * included) and dc; writes dA[t] (the pre-activations' gradient), dV[k] (gradient of v),
 * dc <- gradient of c_{t-1}, dh <- the part of h_{t-1}'s gradient that does not go
 * through W_hh (zoneout's kept part + dY[t-1]), and adds the step's gain and bias
 * gradients to acc. dLC (B, H) is scratch (the gradient of LN(c~)). */
API void ln_lstm_bwd(const ln_lstm_t* P, int64_t t, int64_t k, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 4 * H;
    const float* restrict cp = t ? P->C + (size_t)(t - 1) * B * H : P->c0;
    const float *restrict g_hh = P->g_hh, *restrict g_c = P->g_c;
    float *restrict keep_h = P->keep_h, *restrict keep_c = P->keep_c;
    float *restrict sg_hh = P->part, *restrict sb_hh = sg_hh + G;
    float *restrict sg_c = sb_hh + G, *restrict sb_c = sg_c + H;
    memset(P->part, 0, sizeof(float) * (2 * G + 2 * H));
    split_(P->dh, keep_h, at_(P->ZH, t, B, H), P->zh_rate, n, H);
    split_(P->dc, keep_c, at_(P->ZC, t, B, H), P->zc_rate, n, H);
    for (int64_t r = 0; r < n; r++) {
        const size_t tt = (size_t)t * B + r, kk = (size_t)k * B + r;
        const float *restrict a = P->A + tt * G, *restrict tc = P->TC + tt * H;
        const float *restrict i = a, *restrict f = a + H, *restrict g = a + 2 * H;
        const float *restrict o = a + 3 * H, *restrict c_prev = cp + r * H;
        float *restrict dh = P->dh + r * H, *restrict dc = P->dc + r * H;
        float *restrict da = P->dA + tt * G, *restrict dlc = P->dLC + r * H;
        float* restrict dct = P->dct;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            da[3 * H + j] = dh[j] * tc[j] * (o[j] - o[j] * o[j]);
            dlc[j] = dh[j] * (o[j] - o[j] * tc[j] * tc[j]);
        }
        ln_grad(dlc, P->CT + tt * H, g_c, P->MUC[tt], P->RSC[tt], (int)H, dct, sg_c, sb_c);
        const float* restrict kc = keep_c + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float d = dc[j] + dct[j];
            da[j] = d * g[j] * (i[j] - i[j] * i[j]);
            da[H + j] = d * c_prev[j] * (f[j] - f[j] * f[j]);
            da[2 * H + j] = d * (i[j] - i[j] * g[j] * g[j]);
            dc[j] = d * f[j] + kc[j];
        }
        ln_grad(da, P->V + tt * G, g_hh, P->MU[tt], P->RS[tt], (int)G, P->dV + kk * G,
                sg_hh, sb_hh);
        const float* restrict kh = keep_h + r * H;
        const float* restrict dy = t ? P->dY + ((size_t)(t - 1) * B + r) * H : NULL;
        if (dy) {
#pragma omp simd
            for (int64_t j = 0; j < H; j++) dh[j] = kh[j] + dy[j];
        } else {
            memcpy(dh, kh, sizeof(float) * H);
        }
    }
    double* restrict acc = P->acc;
    const float* restrict part = P->part;
#pragma omp simd
    for (int64_t j = 0; j < 2 * G + 2 * H; j++) acc[j] += part[j];
}

/* ------------------------------------------------------------------ LSTM (no projection) */
typedef struct {
    int64_t B, H;
    float zh_rate, zc_rate;
    const float *h0, *c0, *ZH, *ZC;
    float *A, *C, *TC, *Y;
    /* backward */
    const float* dY;
    float *dA, *dh, *dc, *keep_h, *keep_c;
} lstm_t;

/* Forward step t from pre = xp_t + b_hh + h_{t-1} W_hh^T (n, 4H); writes A[t], TC[t],
 * C[t] (c_t after zoneout), Y[t]. */
API void lstm_fwd(const lstm_t* P, const float* pre, int64_t t, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 4 * H;
    const float* restrict hp = t ? P->Y + (size_t)(t - 1) * B * H : P->h0;
    const float* restrict cp = t ? P->C + (size_t)(t - 1) * B * H : P->c0;
    float* restrict y = P->Y + (size_t)t * B * H;
    float* restrict c = P->C + (size_t)t * B * H;
    for (int64_t r = 0; r < n; r++) {
        const size_t tt = (size_t)t * B + r;
        const float* restrict pr = pre + r * G;
        float* restrict a = P->A + tt * G;
#pragma omp simd
        for (int64_t j = 0; j < G; j++) a[j] = gate_(pr[j], GATE_K(j, H));
        const float *restrict i = a, *restrict f = a + H, *restrict g = a + 2 * H;
        const float *restrict o = a + 3 * H, *restrict c_prev = cp + r * H;
        float *restrict tc = P->TC + tt * H, *restrict yr = y + r * H, *restrict cr = c + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float cn = f[j] * c_prev[j] + i[j] * g[j];
            float th = tanh_(cn);
            tc[j] = th;
            cr[j] = cn;
            yr[j] = o[j] * th;
        }
    }
    zone_(y, hp, at_(P->ZH, t, B, H), P->zh_rate, n, H);
    zone_(c, cp, at_(P->ZC, t, B, H), P->zc_rate, n, H);
}

/* Backward step t: reads dh (dY[t] included), dc; writes dA[t], dc <- d c_{t-1} and
 * dh <- zoneout's kept part of d h_{t-1} + dY[t-1] (the GEMM's part is added by Python). */
API void lstm_bwd(const lstm_t* P, int64_t t, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 4 * H;
    const float* restrict cp = t ? P->C + (size_t)(t - 1) * B * H : P->c0;
    float *restrict keep_h = P->keep_h, *restrict keep_c = P->keep_c;
    split_(P->dh, keep_h, at_(P->ZH, t, B, H), P->zh_rate, n, H);
    split_(P->dc, keep_c, at_(P->ZC, t, B, H), P->zc_rate, n, H);
    for (int64_t r = 0; r < n; r++) {
        const size_t tt = (size_t)t * B + r;
        const float *restrict a = P->A + tt * G, *restrict tc = P->TC + tt * H;
        const float *restrict i = a, *restrict f = a + H, *restrict g = a + 2 * H;
        const float *restrict o = a + 3 * H, *restrict c_prev = cp + r * H;
        const float *restrict kh = keep_h + r * H, *restrict kc = keep_c + r * H;
        const float* restrict dy = t ? P->dY + ((size_t)(t - 1) * B + r) * H : kh;
        float *restrict dh = P->dh + r * H, *restrict dc = P->dc + r * H;
        float* restrict da = P->dA + tt * G;
        const float ky = t ? 1.0f : 0.0f;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float d = dc[j] + dh[j] * (o[j] - o[j] * tc[j] * tc[j]);
            da[3 * H + j] = dh[j] * tc[j] * (o[j] - o[j] * o[j]);
            da[j] = d * g[j] * (i[j] - i[j] * i[j]);
            da[H + j] = d * c_prev[j] * (f[j] - f[j] * f[j]);
            da[2 * H + j] = d * (i[j] - i[j] * g[j] * g[j]);
            dc[j] = d * f[j] + kc[j];
            dh[j] = kh[j] + ky * dy[j];
        }
    }
}

/* ------------------------------------------------------------------ GRU (torch's reset-after form) */
typedef struct {
    int64_t B, H;
    float zh_rate, eps;
    const float *XP, *h0, *ZH;
    float *Ghn, *RZ, *N, *Y;
    /* backward */
    const float* dY;
    float *dGh, *dXn, *dh, *keep_h;
    /* LayerNorm-GRU only (NULL for the GRU): gh = LN(v) g_hh + b_hh, v = (m h) W_hh^T;
     * saved V, MU, RS; the backward's dV, a (3H,) scratch row, and the gain's and bias's
     * gradients [g_hh (3H), b_hh (3H)] (part: a step in float32, acc: over steps in float64) */
    const float *g_hh, *b_hh;
    float *V, *MU, *RS, *dV, *gh, *part;
    double* acc;
} gru_t;

/* One row of the GRU step from gh (3H): writes rz (2H), ghn, nt, y (H). */
static inline void gru_row(const float* restrict g, const float* restrict xp,
                           const float* restrict h_prev, float* restrict rz,
                           float* restrict ghn, float* restrict nt, float* restrict y,
                           int64_t H) {
#pragma omp simd
    for (int64_t j = 0; j < 2 * H; j++) rz[j] = gate_(xp[j] + g[j], 1.0f);
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
        float gn = g[2 * H + j], nn = tanh_(xp[2 * H + j] + rz[j] * gn);
        ghn[j] = gn;
        nt[j] = nn;
        y[j] = lerp_(nn, h_prev[j], rz[H + j]);
    }
}

/* Forward step t (scratch row s) from gh = (m * h_{t-1}) W_hh^T + b_hh (n, 3H):
 * r, z = sigmoid(xp_rz + gh_rz), n = tanh(xp_n + r gh_n), h = lerp(n, h_{t-1}, z), then
 * zoneout; writes RZ[s], Ghn[s] (gh_n), N[s], Y[t]. */
API void gru_fwd(const gru_t* P, const float* gh, int64_t t, int64_t s, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 3 * H;
    const float* restrict hp = t ? P->Y + (size_t)(t - 1) * B * H : P->h0;
    float* restrict y = P->Y + (size_t)t * B * H;
    for (int64_t r = 0; r < n; r++) {
        const size_t ss = (size_t)s * B + r;
        gru_row(gh + r * G, P->XP + ((size_t)t * B + r) * G, hp + r * H, P->RZ + ss * 2 * H,
                P->Ghn + ss * H, P->N + ss * H, y + r * H, H);
    }
    zone_(y, hp, at_(P->ZH, t, B, H), P->zh_rate, n, H);
}

/* LayerNorm-GRU forward step from v = (m * h_{t-1}) W_hh^T (n, 3H): saves V[s], MU[s],
 * RS[s], then the GRU step with gh = LN(v) g_hh + b_hh. */
API void ln_gru_fwd(const gru_t* P, const float* v, int64_t t, int64_t s, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 3 * H;
    const float* restrict hp = t ? P->Y + (size_t)(t - 1) * B * H : P->h0;
    const float *restrict g_hh = P->g_hh, *restrict b_hh = P->b_hh;
    float *restrict y = P->Y + (size_t)t * B * H, *restrict gh = P->gh;
    for (int64_t r = 0; r < n; r++) {
        const size_t ss = (size_t)s * B + r;
        const float* restrict vr = v + r * G;
        memcpy(P->V + ss * G, vr, sizeof(float) * G);
        float mu, rs;
        moments(vr, G, P->eps, &mu, &rs);
        P->MU[ss] = mu;
        P->RS[ss] = rs;
#pragma omp simd
        for (int64_t j = 0; j < G; j++) gh[j] = (vr[j] - mu) * rs * g_hh[j] + b_hh[j];
        gru_row(gh, P->XP + ((size_t)t * B + r) * G, hp + r * H, P->RZ + ss * 2 * H,
                P->Ghn + ss * H, P->N + ss * H, y + r * H, H);
    }
    zone_(y, hp, at_(P->ZH, t, B, H), P->zh_rate, n, H);
}

/* Backward step t (GRU and LayerNorm-GRU): reads dh (gradient of h_t, dY[t] included);
 * writes dGh[t] = [dr, dz, dgh_n] (the gradient of gh), dXn[t] (of xp_n), and dh <- the
 * part of h_{t-1}'s gradient that does not go through W_hh: dh~ z + zoneout's kept part
 * + dY[t-1]. With layer norm (P->V set) also dV[t] = the gradient of v, and the gain's
 * and bias's gradients of the step added to acc. */
API void gru_bwd(const gru_t* P, int64_t t, int64_t n) {
    const int64_t B = P->B, H = P->H, G = 3 * H;
    const float* restrict hp = t ? P->Y + (size_t)(t - 1) * B * H : P->h0;
    float* restrict keep_h = P->keep_h;
    float *restrict sg = P->part, *restrict sb = P->part ? P->part + G : NULL;
    if (P->V) memset(P->part, 0, sizeof(float) * 2 * G);
    split_(P->dh, keep_h, at_(P->ZH, t, B, H), P->zh_rate, n, H);
    for (int64_t r = 0; r < n; r++) {
        const size_t tt = (size_t)t * B + r;
        const float *restrict rg = P->RZ + tt * 2 * H, *restrict zg = rg + H;
        const float *restrict nt = P->N + tt * H, *restrict ghn = P->Ghn + tt * H;
        const float *restrict h_prev = hp + r * H, *restrict kh = keep_h + r * H;
        const float* restrict dy = t ? P->dY + ((size_t)(t - 1) * B + r) * H : kh;
        const float ky = t ? 1.0f : 0.0f;
        float *restrict dh = P->dh + r * H, *restrict dg = P->dGh + tt * G;
        float* restrict dxn = P->dXn + tt * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float d = dh[j], z = zg[j], nn = nt[j], rr = rg[j];
            float dn = d * (1.0f - z) * (1.0f - nn * nn);
            dxn[j] = dn;
            dg[H + j] = d * (h_prev[j] - nn) * (z - z * z);
            dg[j] = dn * ghn[j] * (rr - rr * rr);
            dg[2 * H + j] = dn * rr;
            dh[j] = d * z + kh[j] + ky * dy[j];
        }
        if (P->V)
            ln_grad(dg, P->V + tt * G, P->g_hh, P->MU[tt], P->RS[tt], (int)G, P->dV + tt * G,
                    sg, sb);
    }
    if (P->V) {
        double* restrict acc = P->acc;
        const float* restrict part = P->part;
#pragma omp simd
        for (int64_t j = 0; j < 2 * G; j++) acc[j] += part[j];
    }
}
