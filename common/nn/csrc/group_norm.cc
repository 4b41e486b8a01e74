// GroupNorm forward and backward for MindSpore's Custom(func_type="aot") on CPU, float32.
//
// Layout: x is (N, C, *) contiguous, so that group g of sample n is one run of D = Cg * S values (Cg = C / G,
// S = the product of the trailing sizes); weight and bias are (C,); "opts" is a (2,) float32 tensor
// (eps, G), G being exact in float32.
// Statistics per (n, g): the mean, then the mean squared deviation from it (two passes over a group that
// is usually cache-resident). Each sum runs in 16 float lanes over blocks of 256 values (16 adds per lane,
// vectorisable) and the block sums are added in double, so the rounding error stays near float32's unit
// roundoff whatever the group size. The outputs are float32 expressions of float32 operands, as in torch.
// OpenMP over the N * G groups.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kBlock = 256;

// sum_i p[i]; each block of 256 in 16 float lanes, the block sums in double.
inline double BlockedSum(const float *p, int64_t n) {
  double total = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = n - b < kBlock ? n - b : kBlock;
    float lane[kLanes] = {0};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) lane[l] += p[b + i + l];
    double s = 0.0;
    for (; i < len; ++i) s += p[b + i];
    for (int64_t l = 0; l < kLanes; ++l) s += lane[l];
    total += s;
  }
  return total;
}

// sum_i (p[i] - m)^2, blocked as above.
inline double BlockedSqDev(const float *p, int64_t n, float m) {
  double total = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = n - b < kBlock ? n - b : kBlock;
    float lane[kLanes] = {0};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) {
        const float d = p[b + i + l] - m;
        lane[l] += d * d;
      }
    double s = 0.0;
    for (; i < len; ++i) {
      const double d = static_cast<double>(p[b + i]) - m;
      s += d * d;
    }
    for (int64_t l = 0; l < kLanes; ++l) s += lane[l];
    total += s;
  }
  return total;
}

// sum_i dy[i] and sum_i dy[i] * (x[i] - m), blocked as above.
inline void BlockedGradSums(const float *dy, const float *x, int64_t n, float m, double *sdy, double *sdyd) {
  double t0 = 0.0, t1 = 0.0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = n - b < kBlock ? n - b : kBlock;
    float l0[kLanes] = {0}, l1[kLanes] = {0};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) {
        const float g = dy[b + i + l];
        l0[l] += g;
        l1[l] += g * (x[b + i + l] - m);
      }
    double s0 = 0.0, s1 = 0.0;
    for (; i < len; ++i) {
      s0 += dy[b + i];
      s1 += static_cast<double>(dy[b + i]) * (static_cast<double>(x[b + i]) - m);
    }
    for (int64_t l = 0; l < kLanes; ++l) {
      s0 += l0[l];
      s1 += l1[l];
    }
    t0 += s0;
    t1 += s1;
  }
  *sdy = t0;
  *sdyd = t1;
}

// mean and 1 / sqrt(var + eps) of one group of d values (biased variance, as torch).
inline void Moments(const float *p, int64_t d, double eps, double *mean, double *rstd) {
  const double m = BlockedSum(p, d) / static_cast<double>(d);
  const double var = BlockedSqDev(p, d, static_cast<float>(m)) / static_cast<double>(d);
  *mean = m;
  *rstd = 1.0 / std::sqrt(var + eps);
}

struct Dims {
  int64_t n, g, cg, s;
};

// (N, G, Cg, S) of input 0 with G from opts; false when a dtype is not float32 or C is not G * Cg.
bool ReadDims(int nparam, int expect, int *ndims, int64_t **shapes, const char **dtypes, const float *opts,
              Dims *dims) {
  if (nparam != expect || ndims[0] < 2) return false;
  for (int i = 0; i < nparam; ++i)
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  const int64_t c = shapes[0][1], g = static_cast<int64_t>(opts[1]);
  if (g <= 0 || c % g != 0) return false;
  int64_t s = 1;
  for (int i = 2; i < ndims[0]; ++i) s *= shapes[0][i];
  *dims = {shapes[0][0], g, c / g, s};
  return true;
}

}  // namespace

// inputs x (N, C, *), weight (C,), bias (C,), opts (eps, G); output y (N, C, *).
extern "C" int GroupNormForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *stream, void *extra) {
  const float *opts = static_cast<const float *>(params[3]);
  Dims dm;
  if (!ReadDims(nparam, 5, ndims, shapes, dtypes, opts, &dm)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  const float *bias = static_cast<const float *>(params[2]);
  const double eps = opts[0];
  float *y = static_cast<float *>(params[4]);
  const int64_t d = dm.cg * dm.s, groups = dm.n * dm.g;
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < groups; ++ng) {
    const int64_t g = ng % dm.g;
    const float *p = x + ng * d;
    float *q = y + ng * d;
    double mean, rstd;
    Moments(p, d, eps, &mean, &rstd);
    for (int64_t c = 0; c < dm.cg; ++c) {
      const int64_t ch = g * dm.cg + c;
      const float a = static_cast<float>(rstd * w[ch]);
      const float b = static_cast<float>(bias[ch] - mean * rstd * w[ch]);
      const float *pc = p + c * dm.s;
      float *qc = q + c * dm.s;
      for (int64_t i = 0; i < dm.s; ++i) qc[i] = pc[i] * a + b;
    }
  }
  return 0;
}

// inputs dy (N, C, *), x (N, C, *), weight (C,), opts (eps, G); outputs dx (N, C, *), dweight (C,),
// dbias (C,). With xhat = (x - mean) * rstd over a group of D values:
//   dx = rstd * (w dy - mean_group(w dy) - xhat * mean_group(w dy xhat)),
//   dweight = sum over n, S of dy xhat,  dbias = sum over n, S of dy.
extern "C" int GroupNormBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *stream, void *extra) {
  const float *opts = static_cast<const float *>(params[3]);
  Dims dm;
  if (!ReadDims(nparam, 7, ndims, shapes, dtypes, opts, &dm)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *w = static_cast<const float *>(params[2]);
  const double eps = opts[0];
  float *dx = static_cast<float *>(params[4]);
  float *dw = static_cast<float *>(params[5]);
  float *db = static_cast<float *>(params[6]);
  const int64_t d = dm.cg * dm.s, groups = dm.n * dm.g, channels = dm.g * dm.cg;
  std::vector<double> part_dw(groups * dm.cg), part_db(groups * dm.cg);  // (N, C) partial sums
#pragma omp parallel for schedule(static)
  for (int64_t ng = 0; ng < groups; ++ng) {
    const int64_t g = ng % dm.g;
    const float *xp = x + ng * d;
    const float *gp = dy + ng * d;
    float *out = dx + ng * d;
    double mean, rstd;
    Moments(xp, d, eps, &mean, &rstd);
    const float mf = static_cast<float>(mean);
    double m1 = 0.0, m2 = 0.0;  // sum w dy, sum w dy xhat over the group
    for (int64_t c = 0; c < dm.cg; ++c) {
      double sdy, sdyd;
      BlockedGradSums(gp + c * dm.s, xp + c * dm.s, dm.s, mf, &sdy, &sdyd);
      part_db[ng * dm.cg + c] = sdy;
      part_dw[ng * dm.cg + c] = sdyd * rstd;
      const double wc = w[g * dm.cg + c];
      m1 += wc * sdy;
      m2 += wc * sdyd * rstd;
    }
    const float k0 = static_cast<float>(rstd * m1 / d);
    const float k1 = static_cast<float>(rstd * rstd * m2 / d);
    for (int64_t c = 0; c < dm.cg; ++c) {
      const float a = static_cast<float>(rstd * w[g * dm.cg + c]);
      const float *xc = xp + c * dm.s;
      const float *gc = gp + c * dm.s;
      float *oc = out + c * dm.s;
      for (int64_t i = 0; i < dm.s; ++i) oc[i] = a * gc[i] - k1 * (xc[i] - mf) - k0;
    }
  }
  for (int64_t ch = 0; ch < channels; ++ch) {
    const int64_t g = ch / dm.cg, c = ch % dm.cg;
    double sw = 0.0, sb = 0.0;
    for (int64_t n = 0; n < dm.n; ++n) {
      sw += part_dw[(n * dm.g + g) * dm.cg + c];
      sb += part_db[(n * dm.g + g) * dm.cg + c];
    }
    dw[ch] = static_cast<float>(sw);
    db[ch] = static_cast<float>(sb);
  }
  return 0;
}
