#include "native/gemm.h"

#include <stdexcept>

#include "native/gemm_kernels.h"

namespace autoprec::native {

namespace {

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

void check_codes(const int8_t* w, int64_t count, int weight_bits) {
  const int lo = -(1 << (weight_bits - 1)), hi = (1 << (weight_bits - 1)) - 1;
  for (int64_t i = 0; i < count; ++i) {
    if (w[i] < lo || w[i] > hi) {
      throw std::invalid_argument("weight code " + std::to_string(w[i]) + " at " + std::to_string(i) +
                                  " is outside " + std::to_string(weight_bits) + " bits");
    }
  }
}

// Codes of type T in blocks of 8 columns x `group` consecutive k:
// [N/8][K/group][8 n][group k], N padded to 16 and K to `group` with code 0.
template <class T, class At>
void pack_blocked(PackedWeights& p, int64_t group, const At& at) {
  p.padded_n = round_up(p.n, 16);
  p.padded_k = round_up(p.k, group);
  p.data.resize(p.padded_n * p.padded_k * sizeof(T));
  auto* out = reinterpret_cast<T*>(p.data.data());
  for (int64_t b = 0; b < p.padded_n / 8; ++b)
    for (int64_t kg = 0; kg < p.padded_k / group; ++kg)
      for (int j = 0; j < 8; ++j)
        for (int64_t i = 0; i < group; ++i) *out++ = static_cast<T>(at(b * 8 + j, kg * group + i));
}

}  // namespace

namespace detail {

std::vector<CodeField> code_fields(int weight_bits) {
  if (weight_bits == 8) return {{8, 0}};
  std::vector<CodeField> fields;
  int shift = 0;
  for (int width : {4, 2, 1}) {
    if (weight_bits - shift >= width) {
      fields.push_back({width, shift});
      shift += width;
    }
  }
  return fields;
}

}  // namespace detail

const char* kernel_name(Kernel kernel) {
  switch (kernel) {
    case Kernel::Reference: return "reference";
    case Kernel::Madd16: return "madd16";
    case Kernel::Maddubs: return "maddubs";
    case Kernel::MaddubsSplit: return "maddubs_split";
    case Kernel::MaddubsPacked: return "maddubs_packed";
    case Kernel::Lut: return "lut";
    case Kernel::Vnni: return "vnni";
    case Kernel::VnniPacked: return "vnni_packed";
  }
  return "?";
}

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

bool kernel_supports(Kernel kernel, int wb, int ab) {
  if (wb < 1 || wb > 8 || ab < 1 || ab > 8) return false;
  switch (kernel) {
    case Kernel::Reference: return true;
    case Kernel::Madd16: return cpu_has_avx2();
    case Kernel::Maddubs: return cpu_has_avx2() && !(wb == 8 && ab == 8);
    case Kernel::MaddubsSplit: return cpu_has_avx2();
    case Kernel::MaddubsPacked: return cpu_has_avx2() && !(wb == 8 && ab == 8);
    case Kernel::Lut: return cpu_has_avx2() && wb <= 4 && ab <= 6;
    case Kernel::Vnni:
    case Kernel::VnniPacked: return cpu_has_avx512_vnni();
  }
  return false;
}

PackedWeights pack_weights(Kernel kernel, const int8_t* w, int64_t n, int64_t k, int wb, int ab) {
  if (n < 1 || k < 1) throw std::invalid_argument("pack_weights: empty weights");
  if (!kernel_supports(kernel, wb, ab)) {
    throw std::invalid_argument(std::string("kernel ") + kernel_name(kernel) + " does not run W" + std::to_string(wb) +
                                "A" + std::to_string(ab) + " exactly on this CPU");
  }
  check_codes(w, n * k, wb);
  PackedWeights p;
  p.kernel = kernel;
  p.weight_bits = wb;
  p.activation_bits = ab;
  p.n = n;
  p.k = k;
  p.row_sums.assign(n, 0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < k; ++i) p.row_sums[j] += w[j * k + i];
  }
  auto at = [&](int64_t j, int64_t i) -> int { return j < n && i < k ? w[j * k + i] : 0; };
  switch (kernel) {
    case Kernel::Reference: {
      p.padded_n = n;
      p.padded_k = k;
      p.data.assign(reinterpret_cast<const uint8_t*>(w), reinterpret_cast<const uint8_t*>(w) + n * k);
      break;
    }
    case Kernel::Madd16:  // int16 [N/8][K/2][8 n][2 k]
      pack_blocked<int16_t>(p, 2, at);
      break;
    case Kernel::Maddubs:
    case Kernel::MaddubsSplit:
    case Kernel::Vnni:  // int8 [N/8][K/4][8 n][4 k]
      pack_blocked<int8_t>(p, 4, at);
      break;
    case Kernel::MaddubsPacked:
    case Kernel::VnniPacked: {
      // Per 16-column block, the maddubs layout's codes q = w + 2^(wb-1), K padded
      // to 16 so that a block holds whole chunks; each field a stream of chunks.
      p.padded_n = round_up(n, 16);
      p.padded_k = round_up(k, 16);
      const int64_t block_codes = 16 * p.padded_k;
      const int offset = 1 << (wb - 1);
      std::vector<uint8_t> q(block_codes);
      p.data.assign(p.padded_n / 16 * block_codes * wb / 8, 0);
      uint8_t* out = p.data.data();
      for (int64_t nb = 0; nb < p.padded_n / 16; ++nb) {
        size_t at_code = 0;
        for (int64_t half = 0; half < 2; ++half)
          for (int64_t kq = 0; kq < p.padded_k / 4; ++kq)
            for (int j = 0; j < 8; ++j)
              for (int i = 0; i < 4; ++i) q[at_code++] = static_cast<uint8_t>(at(nb * 16 + half * 8 + j, kq * 4 + i) + offset);
        for (const detail::CodeField& f : detail::code_fields(wb)) {
          const int64_t per_chunk = detail::codes_per_chunk(f.bits);
          const int mask = (1 << f.bits) - 1;
          for (int64_t c0 = 0; c0 < block_codes; c0 += per_chunk, out += 32)
            for (int i = 0; i < 32; ++i)
              for (int sub = 0; sub < 8 / f.bits; ++sub)
                out[i] |= static_cast<uint8_t>(((q[c0 + i + 32 * sub] >> f.shift) & mask) << (sub * f.bits));
        }
      }
      break;
    }
    case Kernel::Lut: {
      // Bit planes of q = w + 2^(wb-1); a byte holds one plane of one n over an
      // octet of k (bit j = k 8o+j). 1 and 3 bits: [N/16][wb planes][K/8][16 n].
      // 2 and 4 bits, planes interleaved: [N/G][K/8][G n][wb planes], G = 16/wb.
      p.padded_n = round_up(n, 16);
      p.padded_k = round_up(k, 8);
      const int64_t octets = p.padded_k / 8;
      p.data.assign(p.padded_n * wb * octets * 8 / 8, 0);
      const int offset = 1 << (wb - 1);
      auto plane_byte = [&](int64_t row, int b, int64_t o) {
        uint8_t byte = 0;
        for (int i = 0; i < 8; ++i) {
          const int64_t col = o * 8 + i;
          // Padding holds code 0 (q = offset); its activations are 0, so it adds nothing.
          const int q = (row < n && col < k ? w[row * k + col] : 0) + offset;
          byte |= static_cast<uint8_t>(((q >> b) & 1) << i);
        }
        return byte;
      };
      const bool interleaved = wb == 2 || wb == 4;
      const int64_t group = interleaved ? 16 / wb : 16;
      for (int64_t row = 0; row < p.padded_n; ++row)
        for (int b = 0; b < wb; ++b)
          for (int64_t o = 0; o < octets; ++o) {
            const int64_t block = row / group, j = row % group;
            const int64_t at_byte = interleaved ? (block * octets + o) * 16 + j * wb + b
                                                : ((block * wb + b) * octets + o) * 16 + j;
            p.data[at_byte] = plane_byte(row, b, o);
          }
      break;
    }
  }
  return p;
}

void gemm_reference(const uint8_t* a, int64_t m, const int8_t* w, int64_t n, int64_t k, int32_t* c) {
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int32_t s = 0;
      for (int64_t i = 0; i < k; ++i) s += static_cast<int32_t>(a[r * k + i]) * w[j * k + i];
      c[r * n + j] = s;
    }
}

void gemm(const PackedWeights& w, const uint8_t* a, int64_t m, int32_t* c) {
  switch (w.kernel) {
    case Kernel::Reference:
      gemm_reference(a, m, reinterpret_cast<const int8_t*>(w.data.data()), w.n, w.k, c);
      return;
    case Kernel::Madd16: detail::gemm_madd16_avx2(w, a, m, c); return;
    case Kernel::Maddubs: detail::gemm_maddubs_avx2(w, a, m, c); return;
    case Kernel::MaddubsSplit: detail::gemm_maddubs_split_avx2(w, a, m, c); return;
    case Kernel::MaddubsPacked: detail::gemm_maddubs_packed_avx2(w, a, m, c); return;
    case Kernel::Lut: detail::gemm_lut_avx2(w, a, m, c); return;
    case Kernel::Vnni:
    case Kernel::VnniPacked: detail::gemm_vnni(w, a, w.padded_k, 1, 0, m, c); return;
  }
}

bool gemm_in_place_supports(const PackedWeights& w, int64_t segments) {
  const bool maddubs = w.kernel == Kernel::Maddubs || w.kernel == Kernel::MaddubsSplit || w.kernel == Kernel::MaddubsPacked ||
                       w.kernel == Kernel::Vnni || w.kernel == Kernel::VnniPacked;
  return maddubs && cpu_has_avx2() && segments >= 1 && w.k == w.padded_k && w.k % segments == 0 &&
         (w.k / segments) % 4 == 0;
}

void gemm_in_place(const PackedWeights& w, const uint8_t* a, int64_t lda, int64_t segments, int64_t segment_stride,
                   int64_t m, int32_t* c) {
  if (!gemm_in_place_supports(w, segments)) throw std::invalid_argument("gemm_in_place: not for this kernel or k");
  detail::gemm_in_place_avx2(w, a, lda, segments, segment_stride, m, c);
}

}  // namespace autoprec::native
