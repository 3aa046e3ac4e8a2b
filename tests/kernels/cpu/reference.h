// Plain double-precision reference implementations of the ops in kernels/ops.h, written from the
// math and independently of kernels/cpu: loops as the formulas read, full T x T attention matrices,
// explicit Jacobians where that is the most direct statement. Every backward here is itself checked
// against central finite differences of the matching forward in the op tests.
// Also: the error measures and tolerances the op tests share.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <vector>

namespace inkstone::testing::ref {

using Vec = std::vector<double>;

inline Vec to_double(const std::vector<float>& x) {
  return Vec(x.begin(), x.end());
}

// ---- Error measures --------------------------------------------------------------------------------

// Unit roundoff of fp32. An fp32 reduction over K terms accumulates a relative error that grows like
// sqrt(K) * u for random-signed data (and K * u at worst); elementwise math costs a few u per op.
constexpr double kFp32Roundoff = 0x1p-24;

// Tolerance for a max_scaled_error of an fp32 result whose outputs are reductions over `length` terms:
// `ops` units of roundoff per term, growing with sqrt(length).
inline double fp32_tolerance(double length, double ops = 16) {
  return ops * kFp32Roundoff * std::sqrt(std::max(1.0, length));
}

// max_i |actual_i - expected_i| / max_i |expected_i|: the error measured against the output's scale,
// so an element that happens to land near zero is not judged by its own (meaningless) relative error.
template <class T>
double max_scaled_error(const std::vector<T>& actual, const Vec& expected) {
  if (actual.size() != expected.size()) return std::numeric_limits<double>::infinity();
  double scale = 0, err = 0;
  for (double e : expected) scale = std::max(scale, std::abs(e));
  for (size_t i = 0; i < expected.size(); ++i) {
    const double diff = std::abs(static_cast<double>(actual[i]) - expected[i]);
    err = std::max(err, std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff);
  }
  return scale > 0 ? err / scale : err;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

inline Vec add(const Vec& a, const Vec& b) {
  Vec out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
  return out;
}

// Central finite differences of a scalar function, in double: error ~ h^2 f''' + 1e-16 |f| / h,
// about 1e-9 relative here, far below any fp32 tolerance.
inline Vec numerical_gradient(const std::function<double(const Vec&)>& f, Vec x, double h = 1e-5) {
  Vec grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f(x);
    x[i] = saved - h;
    const double down = f(x);
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

// ---- Embedding -----------------------------------------------------------------------------------

inline Vec embedding_forward(const std::vector<int32_t>& tokens, int64_t T, int64_t C, const Vec& wte,
                             const Vec& wpe, int pos_offset) {
  const int64_t BT = static_cast<int64_t>(tokens.size());
  Vec out(BT * C);
  for (int64_t bt = 0; bt < BT; ++bt)
    for (int64_t c = 0; c < C; ++c)
      out[bt * C + c] = wte[tokens[bt] * C + c] + wpe[(pos_offset + bt % T) * C + c];
  return out;
}

struct EmbeddingGrads {
  Vec dwte, dwpe;
};

inline EmbeddingGrads embedding_backward(const Vec& dout, const std::vector<int32_t>& tokens, int64_t T,
                                         int64_t C, int64_t V, int64_t ctx, int pos_offset) {
  EmbeddingGrads g{Vec(V * C, 0.0), Vec(ctx * C, 0.0)};
  for (size_t bt = 0; bt < tokens.size(); ++bt)
    for (int64_t c = 0; c < C; ++c) {
      g.dwte[tokens[bt] * C + c] += dout[bt * C + c];
      g.dwpe[(pos_offset + static_cast<int64_t>(bt) % T) * C + c] += dout[bt * C + c];
    }
  return g;
}

// ---- Matmul ----------------------------------------------------------------------------------------

// W[k][o] of a weight stored [C,OC] (InOut) or [OC,C] (OutIn).
inline double weight_at(const Vec& w, bool out_in, int64_t C, int64_t OC, int64_t k, int64_t o) {
  return out_in ? w[o * C + k] : w[k * OC + o];
}

// inp [N,C] . W + bias -> [N,OC] (no epilogue).
inline Vec matmul_forward(const Vec& inp, const Vec& w, const Vec* bias, int64_t N, int64_t C, int64_t OC,
                          bool out_in) {
  Vec out(N * OC);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int64_t k = 0; k < C; ++k) s += inp[n * C + k] * weight_at(w, out_in, C, OC, k, o);
      out[n * OC + o] = s;
    }
  return out;
}

struct MatmulGrads {
  Vec dinp, dweight, dbias;
};

inline MatmulGrads matmul_backward(const Vec& dout, const Vec& inp, const Vec& w, int64_t N, int64_t C,
                                   int64_t OC, bool out_in) {
  MatmulGrads g{Vec(N * C, 0.0), Vec(C * OC, 0.0), Vec(OC, 0.0)};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      const double d = dout[n * OC + o];
      g.dbias[o] += d;
      for (int64_t k = 0; k < C; ++k) {
        g.dinp[n * C + k] += d * weight_at(w, out_in, C, OC, k, o);
        g.dweight[out_in ? o * C + k : k * OC + o] += d * inp[n * C + k];
      }
    }
  return g;
}

// ---- GELU (tanh approximation, as GPT-2 defines it) -----------------------------------------------

inline double gelu(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

inline double gelu_grad(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  const double t = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// ---- LayerNorm -------------------------------------------------------------------------------------

struct LayerNormResult {
  Vec out, mean, rstd;
};

inline LayerNormResult layernorm_forward(const Vec& inp, const Vec& w, const Vec& b, int64_t N, int64_t C,
                                         double eps) {
  LayerNormResult r{Vec(N * C), Vec(N), Vec(N)};
  for (int64_t n = 0; n < N; ++n) {
    const double* x = &inp[n * C];
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[c] / C;
    for (int64_t c = 0; c < C; ++c) var += (x[c] - mean) * (x[c] - mean) / C;
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c) r.out[n * C + c] = (x[c] - mean) * rstd * w[c] + b[c];
    r.mean[n] = mean;
    r.rstd[n] = rstd;
  }
  return r;
}

struct LayerNormGrads {
  Vec dinp, dweight, dbias;
};

// dinp through the explicit Jacobian of the normalisation: with xhat_i = (x_i - mean) * rstd,
// d xhat_i / d x_j = rstd * (delta_ij - 1/C - xhat_i xhat_j / C).
inline LayerNormGrads layernorm_backward(const Vec& dout, const Vec& inp, const Vec& w, int64_t N, int64_t C,
                                         double eps) {
  const LayerNormResult fwd = layernorm_forward(inp, w, Vec(C, 0.0), N, C, eps);
  LayerNormGrads g{Vec(N * C, 0.0), Vec(C, 0.0), Vec(C, 0.0)};
  for (int64_t n = 0; n < N; ++n) {
    const double rstd = fwd.rstd[n];
    Vec xhat(C);
    for (int64_t c = 0; c < C; ++c) xhat[c] = (inp[n * C + c] - fwd.mean[n]) * rstd;
    for (int64_t i = 0; i < C; ++i) {
      const double d = dout[n * C + i];
      g.dweight[i] += d * xhat[i];
      g.dbias[i] += d;
      for (int64_t j = 0; j < C; ++j)
        g.dinp[n * C + j] += d * w[i] * rstd * ((i == j ? 1.0 : 0.0) - 1.0 / C - xhat[i] * xhat[j] / C);
    }
  }
  return g;
}

// ---- Attention (naive: full causal score matrix per head) ------------------------------------------

struct AttentionResult {
  Vec out, lse;
};

struct AttentionDims {
  int64_t B, T, C, NH;
  int64_t hd() const { return C / NH; }
  // Element d of head h of q (part 0), k (1) or v (2) for token t of sequence b, in qkv [B,T,3C].
  int64_t qkv_index(int part, int64_t b, int64_t t, int64_t h, int64_t d) const {
    return (b * T + t) * 3 * C + part * C + h * hd() + d;
  }
  int64_t out_index(int64_t b, int64_t t, int64_t h, int64_t d) const {
    return (b * T + t) * C + h * hd() + d;
  }
};

// P[i][j] = softmax_j(q_i . k_j / sqrt(hd)) over j <= i (0 above the diagonal), and the log-sum-exps.
inline void attention_probabilities(const Vec& qkv, const AttentionDims& s, int64_t b, int64_t h,
                                    std::vector<Vec>& P, Vec& lse) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.hd()));
  P.assign(s.T, Vec(s.T, 0.0));
  lse.assign(s.T, 0.0);
  for (int64_t i = 0; i < s.T; ++i) {
    Vec scores(i + 1);
    for (int64_t j = 0; j <= i; ++j) {
      double dot_qk = 0;
      for (int64_t d = 0; d < s.hd(); ++d)
        dot_qk += qkv[s.qkv_index(0, b, i, h, d)] * qkv[s.qkv_index(1, b, j, h, d)];
      scores[j] = dot_qk * scale;
    }
    const double max = *std::max_element(scores.begin(), scores.end());
    double sum = 0;
    for (double sc : scores) sum += std::exp(sc - max);
    lse[i] = max + std::log(sum);
    for (int64_t j = 0; j <= i; ++j) P[i][j] = std::exp(scores[j] - lse[i]);
  }
}

inline AttentionResult attention_forward(const Vec& qkv, const AttentionDims& s) {
  AttentionResult r{Vec(s.B * s.T * s.C, 0.0), Vec(s.B * s.NH * s.T)};
  std::vector<Vec> P;
  Vec lse;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.NH; ++h) {
      attention_probabilities(qkv, s, b, h, P, lse);
      for (int64_t i = 0; i < s.T; ++i) {
        r.lse[(b * s.NH + h) * s.T + i] = lse[i];
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t d = 0; d < s.hd(); ++d)
            r.out[s.out_index(b, i, h, d)] += P[i][j] * qkv[s.qkv_index(2, b, j, h, d)];
      }
    }
  return r;
}

// Matrix form: dV = P^T dO; dP = dO V^T; dS = P * (dP - rowsum(P * dP)); dQ = dS K / sqrt(hd); dK = dS^T Q /
// sqrt(hd).
inline Vec attention_backward(const Vec& dout, const Vec& qkv, const AttentionDims& s) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.hd()));
  Vec dqkv(qkv.size(), 0.0);
  std::vector<Vec> P;
  Vec lse;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.NH; ++h) {
      attention_probabilities(qkv, s, b, h, P, lse);
      std::vector<Vec> dP(s.T, Vec(s.T, 0.0)), dS(s.T, Vec(s.T, 0.0));
      for (int64_t i = 0; i < s.T; ++i)
        for (int64_t j = 0; j < s.T; ++j)
          for (int64_t d = 0; d < s.hd(); ++d) {
            dP[i][j] += dout[s.out_index(b, i, h, d)] * qkv[s.qkv_index(2, b, j, h, d)];
            dqkv[s.qkv_index(2, b, j, h, d)] += P[i][j] * dout[s.out_index(b, i, h, d)];
          }
      for (int64_t i = 0; i < s.T; ++i) {
        double row = 0;
        for (int64_t j = 0; j < s.T; ++j) row += P[i][j] * dP[i][j];
        for (int64_t j = 0; j < s.T; ++j) dS[i][j] = P[i][j] * (dP[i][j] - row);
      }
      for (int64_t i = 0; i < s.T; ++i)
        for (int64_t j = 0; j < s.T; ++j)
          for (int64_t d = 0; d < s.hd(); ++d) {
            dqkv[s.qkv_index(0, b, i, h, d)] += dS[i][j] * qkv[s.qkv_index(1, b, j, h, d)] * scale;
            dqkv[s.qkv_index(1, b, j, h, d)] += dS[i][j] * qkv[s.qkv_index(0, b, i, h, d)] * scale;
          }
    }
  return dqkv;
}

// ---- Softmax and cross-entropy ---------------------------------------------------------------------

// Row softmax over the first `valid` of `cols` columns; the rest are 0.
inline Vec softmax_forward(const Vec& inp, int64_t N, int64_t cols, int64_t valid) {
  Vec out(N * cols, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const double* x = &inp[n * cols];
    const double max = *std::max_element(x, x + valid);
    double sum = 0;
    for (int64_t c = 0; c < valid; ++c) sum += std::exp(x[c] - max);
    for (int64_t c = 0; c < valid; ++c) out[n * cols + c] = std::exp(x[c] - max) / sum;
  }
  return out;
}

struct CrossEntropyResult {
  Vec losses, dlogits;
};

inline CrossEntropyResult cross_entropy(const Vec& logits, const std::vector<int32_t>& targets, int64_t Vp,
                                        int64_t V, double dloss) {
  const int64_t N = static_cast<int64_t>(targets.size());
  const Vec probs = softmax_forward(logits, N, Vp, V);
  CrossEntropyResult r{Vec(N, 0.0), Vec(N * Vp, 0.0)};
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    r.losses[n] = -std::log(probs[n * Vp + targets[n]]);
    for (int64_t v = 0; v < V; ++v)
      r.dlogits[n * Vp + v] = dloss * (probs[n * Vp + v] - (v == targets[n] ? 1.0 : 0.0));
  }
  return r;
}

// ---- AdamW (torch.optim.AdamW's update, step t 1-based) --------------------------------------------

struct AdamWState {
  Vec params, m, v;
};

struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay, grad_scale;
};

inline void adamw_step(AdamWState& s, const Vec& grads, const AdamWHyper& k, int t) {
  for (size_t i = 0; i < s.params.size(); ++i) {
    const double g = grads[i] * k.grad_scale;
    s.params[i] *= 1.0 - k.lr * k.weight_decay;
    s.m[i] = k.beta1 * s.m[i] + (1.0 - k.beta1) * g;
    s.v[i] = k.beta2 * s.v[i] + (1.0 - k.beta2) * g * g;
    const double m_hat = s.m[i] / (1.0 - std::pow(k.beta1, t));
    const double v_hat = s.v[i] / (1.0 - std::pow(k.beta2, t));
    s.params[i] -= k.lr * m_hat / (std::sqrt(v_hat) + k.eps);
  }
}

}  // namespace inkstone::testing::ref
