// The byte order of this machine, for readers of little- or big-endian files.
#pragma once

namespace autoprec::data {

inline constexpr bool kHostBigEndian =
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    true;
#else
    false;
#endif

}  // namespace autoprec::data
