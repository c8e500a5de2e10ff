// mlxk CPU kernels: MLX's affine-quantized matmul (x @ dequant(w).T) for the CPU backend.
//
// MLX's own CPU kernel decodes every weight once per activation row in scalar code. This one
// decodes 8 packed bytes at a time with AVX2, multiplies by the group scale once per output
// column and reuses the decoded weights for up to four rows; the group bias is folded in as
// bias * sum(x over the group), so the inner loop is decode + FMA only. Accumulation is float32
// whatever the activation dtype. Built by mlxk on first use (see docs/cpu-kernels.md).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/array.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"
#include "mlx/version.h"

namespace mx = mlx::core;
namespace nb = nanobind;

namespace {

template <typename T>
inline float to_float(T v) {
  return static_cast<float>(v);
}

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

// Gather row-major activations (any strides, any float dtype) into float32 rows laid out for
// the kernel, plus the per-group sums used for the bias term. For 4 bits every 16 consecutive
// values are stored as the 8 even ones then the 8 odd ones (the order the nibbles decode in).
template <typename T>
void prepare_x(const mx::array& x, int bits, int group_size, float* xp, float* xsum) {
  const int K = x.shape(-1);
  const size_t M = x.size() / K;
  const int G = K / group_size;
  const T* base = x.data<T>();
  const bool contiguous = x.flags().row_contiguous;
  const int nd = x.ndim();
  const int64_t kstride = x.strides()[nd - 1];
  std::vector<float> row(K);
  for (size_t m = 0; m < M; ++m) {
    const T* src;
    int64_t step;
    if (contiguous) {
      src = base + m * K;
      step = 1;
    } else {
      int64_t off = 0;
      size_t rest = m;
      for (int d = nd - 2; d >= 0; --d) {
        off += static_cast<int64_t>(rest % x.shape(d)) * x.strides()[d];
        rest /= x.shape(d);
      }
      src = base + off;
      step = kstride;
    }
    for (int k = 0; k < K; ++k) row[k] = to_float(src[k * step]);
    float* dst = xp + m * K;
    float* sums = xsum + m * G;
    for (int g = 0; g < G; ++g) {
      float s = 0.f;
      for (int k = g * group_size; k < (g + 1) * group_size; ++k) s += row[k];
      sums[g] = s;
    }
    if (bits == 4) {
      for (int c = 0; c < K; c += 16) {
        for (int i = 0; i < 8; ++i) {
          dst[c + i] = row[c + 2 * i];
          dst[c + 8 + i] = row[c + 2 * i + 1];
        }
      }
    } else {
      std::memcpy(dst, row.data(), sizeof(float) * K);
    }
  }
}

struct Problem {
  const uint8_t* w;     // N rows of K * bits / 8 bytes
  const void* scales;   // N x G
  const void* biases;   // N x G
  const float* xp;      // M x K, prepared
  const float* xsum;    // M x G
  float* out;           // M x ldo
  int M, N, K, G, group_size, ldo;
};

// One tile: NB output columns x MB activation rows, starting at column n and row m.
template <int BITS, int NB, int MB, typename ST>
inline void tile(const Problem& p, int n, int m) {
  const int row_bytes = p.K * BITS / 8;
  const int chunks_per_group = p.group_size * BITS / 64;  // a chunk is 8 packed bytes
  const int floats_per_chunk = 64 / BITS;
  const ST* sc = static_cast<const ST*>(p.scales);
  const ST* bi = static_cast<const ST*>(p.biases);
  const __m256i mask = _mm256_set1_epi32(0xF);
  __m256 acc[NB][MB];
  float bacc[NB][MB];
  for (int j = 0; j < NB; ++j)
    for (int r = 0; r < MB; ++r) {
      acc[j][r] = _mm256_setzero_ps();
      bacc[j][r] = 0.f;
    }
  const uint8_t* wrow[NB];
  for (int j = 0; j < NB; ++j) wrow[j] = p.w + static_cast<size_t>(n + j) * row_bytes;
  const float* xrow[MB];
  const float* srow[MB];
  for (int r = 0; r < MB; ++r) {
    xrow[r] = p.xp + static_cast<size_t>(m + r) * p.K;
    srow[r] = p.xsum + static_cast<size_t>(m + r) * p.G;
  }
  for (int g = 0; g < p.G; ++g) {
    __m256 sv[NB];
    for (int j = 0; j < NB; ++j) {
      const size_t gi = static_cast<size_t>(n + j) * p.G + g;
      sv[j] = _mm256_set1_ps(to_float(sc[gi]));
      const float b = to_float(bi[gi]);
      for (int r = 0; r < MB; ++r) bacc[j][r] += b * srow[r][g];
    }
    for (int c = g * chunks_per_group; c < (g + 1) * chunks_per_group; ++c) {
      const int xo = c * floats_per_chunk;
      for (int j = 0; j < NB; ++j) {
        const __m256i v = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(wrow[j] + c * 8)));
        if constexpr (BITS == 4) {
          const __m256 q0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), sv[j]);
          const __m256 q1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), sv[j]);
          for (int r = 0; r < MB; ++r) {
            acc[j][r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(xrow[r] + xo), acc[j][r]);
            acc[j][r] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xrow[r] + xo + 8), acc[j][r]);
          }
        } else {
          const __m256 q0 = _mm256_mul_ps(_mm256_cvtepi32_ps(v), sv[j]);
          for (int r = 0; r < MB; ++r)
            acc[j][r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(xrow[r] + xo), acc[j][r]);
        }
      }
    }
  }
  for (int j = 0; j < NB; ++j)
    for (int r = 0; r < MB; ++r)
      p.out[static_cast<size_t>(m + r) * p.ldo + n + j] = hsum(acc[j][r]) + bacc[j][r];
}

template <int BITS, int MB, typename ST>
void columns(const Problem& p, int m, int n0, int n1) {
  constexpr int NB = MB <= 2 ? 4 : 2;
  int n = n0;
  for (; n + NB <= n1; n += NB) tile<BITS, NB, MB, ST>(p, n, m);
  for (; n < n1; ++n) tile<BITS, 1, MB, ST>(p, n, m);
}

// Columns [n0, n1) for every row: column blocks outside, row blocks inside, so a block of
// packed weights stays in L1 while all rows use it.
template <int BITS, typename ST>
void run_range(const Problem& p, int n0, int n1) {
  constexpr int NBLK = 16;
  for (int nb = n0; nb < n1; nb += NBLK) {
    const int ne = nb + NBLK < n1 ? nb + NBLK : n1;
    int m = 0;
    for (; m + 4 <= p.M; m += 4) columns<BITS, 4, ST>(p, m, nb, ne);
    switch (p.M - m) {
      case 3: columns<BITS, 3, ST>(p, m, nb, ne); break;
      case 2: columns<BITS, 2, ST>(p, m, nb, ne); break;
      case 1: columns<BITS, 1, ST>(p, m, nb, ne); break;
      default: break;
    }
  }
}

template <int BITS>
void run_bits(const Problem& p, mx::Dtype st) {
  if (st == mx::float32) run_range<BITS, float>(p, 0, p.N);
  else if (st == mx::float16) run_range<BITS, mx::float16_t>(p, 0, p.N);
  else run_range<BITS, mx::bfloat16_t>(p, 0, p.N);
}

template <typename T>
void store(const float* src, T* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
}

void compute(const mx::array& x, const mx::array& w, const mx::array& scales,
             const mx::array& biases, mx::array& out, int group_size, int bits) {
  const int K = x.shape(-1);
  const int M = static_cast<int>(x.size() / K);
  const int N = w.shape(0);
  const int G = K / group_size;
  if (M == 0 || N == 0) return;
  thread_local std::vector<float> xp, xsum, fout;
  xp.resize(static_cast<size_t>(M) * K);
  xsum.resize(static_cast<size_t>(M) * G);
  switch (x.dtype()) {
    case mx::float32: prepare_x<float>(x, bits, group_size, xp.data(), xsum.data()); break;
    case mx::float16: prepare_x<mx::float16_t>(x, bits, group_size, xp.data(), xsum.data()); break;
    default: prepare_x<mx::bfloat16_t>(x, bits, group_size, xp.data(), xsum.data()); break;
  }
  float* dst;
  if (out.dtype() == mx::float32) {
    dst = out.data<float>();
  } else {
    fout.resize(static_cast<size_t>(M) * N);
    dst = fout.data();
  }
  Problem p{w.data<uint8_t>(), scales.data<void>(), biases.data<void>(), xp.data(), xsum.data(),
            dst, M, N, K, G, group_size, N};
  if (bits == 4) run_bits<4>(p, scales.dtype());
  else run_bits<8>(p, scales.dtype());
  const size_t total = static_cast<size_t>(M) * N;
  if (out.dtype() == mx::float16) store(dst, out.data<mx::float16_t>(), total);
  else if (out.dtype() == mx::bfloat16) store(dst, out.data<mx::bfloat16_t>(), total);
}

class QuantizedMatmul : public mx::UnaryPrimitive {
 public:
  QuantizedMatmul(mx::Stream stream, int group_size, int bits)
      : mx::UnaryPrimitive(stream), group_size_(group_size), bits_(bits) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& encoder = mx::cpu::get_command_encoder(stream());
    for (const auto& a : inputs) encoder.set_input_array(a);
    encoder.set_output_array(out);
    encoder.dispatch([x = mx::array::unsafe_weak_copy(inputs[0]),
                      w = mx::array::unsafe_weak_copy(inputs[1]),
                      s = mx::array::unsafe_weak_copy(inputs[2]),
                      b = mx::array::unsafe_weak_copy(inputs[3]),
                      o = mx::array::unsafe_weak_copy(out), gs = group_size_,
                      bits = bits_]() mutable { compute(x, w, s, b, o, gs, bits); });
  }

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("mlxk quantized_matmul runs on the CPU only");
  }

  const char* name() const override { return "MlxkQuantizedMatmul"; }

  bool is_equivalent(const mx::Primitive& other) const override {
    const auto& o = static_cast<const QuantizedMatmul&>(other);
    return group_size_ == o.group_size_ && bits_ == o.bits_;
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    auto shape = inputs[0].shape();
    shape.back() = inputs[1].shape(0);
    return {shape};
  }

 private:
  int group_size_;
  int bits_;
};

bool is_float(mx::Dtype t) {
  return t == mx::float32 || t == mx::float16 || t == mx::bfloat16;
}

mx::array ready(const mx::array& a, mx::Stream s) {
  // Weights are normally evaluated and row-contiguous already; anything else gets a copy.
  if (a.is_available() && a.flags().row_contiguous) return a;
  return mx::contiguous(a, false, s);
}

// x @ dequantize(w, scales, biases).T on the CPU (MLX's transpose=True layout).
mx::array quantized_matmul(const mx::array& x, const mx::array& w, const mx::array& scales,
                           const mx::array& biases, int group_size, int bits) {
  if (bits != 4 && bits != 8) throw std::invalid_argument("bits must be 4 or 8");
  if (group_size != 32 && group_size != 64 && group_size != 128)
    throw std::invalid_argument("group_size must be 32, 64 or 128");
  if (w.dtype() != mx::uint32 || w.ndim() != 2)
    throw std::invalid_argument("w must be a 2-D uint32 array");
  if (x.ndim() < 1 || !is_float(x.dtype()))
    throw std::invalid_argument("x must be a float32, float16 or bfloat16 array");
  const int N = w.shape(0);
  const int K = w.shape(1) * 32 / bits;
  if (x.shape(-1) != K)
    throw std::invalid_argument("x's last dimension does not match the quantized weight");
  const mx::Shape sshape{N, K / group_size};
  if (scales.shape() != sshape || biases.shape() != sshape || !is_float(scales.dtype()) ||
      biases.dtype() != scales.dtype())
    throw std::invalid_argument("scales/biases do not match the quantized weight");
  auto stream = mx::default_stream(mx::Device::cpu);
  auto shape = x.shape();
  shape.back() = N;
  const auto dtype = mx::promote_types(x.dtype(), scales.dtype());
  return mx::array(std::move(shape), dtype,
                   std::make_shared<QuantizedMatmul>(stream, group_size, bits),
                   {x, ready(w, stream), ready(scales, stream), ready(biases, stream)});
}

}  // namespace

NB_MODULE(_mlxk_cpu_kernels, m) {
  m.doc() = "mlxk CPU kernels for MLX (built by mlxk on first use)";
  m.def("quantized_matmul", &quantized_matmul, nb::arg("x"), nb::arg("w"), nb::arg("scales"),
        nb::arg("biases"), nb::arg("group_size"), nb::arg("bits"));
  m.attr("built_for_mlx") = std::to_string(MLX_VERSION_MAJOR) + "." +
                            std::to_string(MLX_VERSION_MINOR) + "." +
                            std::to_string(MLX_VERSION_PATCH);
}
