// examples/poincare_embeddings/progress.hpp — a one-line progress bar on stderr, silent when
// stderr is not a terminal (logs and CI stay clean).
#pragma once

#include <cstdint>
#include <cstdio>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace hyplora {
namespace examples {
namespace emb {

inline bool stderr_is_tty() {
#if defined(__unix__) || defined(__APPLE__)
  static const bool tty = isatty(fileno(stderr)) != 0;
  return tty;
#else
  return false;
#endif
}

inline void draw_progress(const char* label, std::int64_t done, std::int64_t total) {
  if (!stderr_is_tty() || total <= 0) return;
  if (done > total) done = total;
  const int width = 40;
  const int fill = static_cast<int>(width * done / total);
  std::fprintf(stderr, "\r%-28s [", label);
  for (int i = 0; i < width; ++i) std::fputc(i < fill ? '#' : '.', stderr);
  std::fprintf(stderr, "] %3d%%", static_cast<int>(100 * done / total));
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace emb
}  // namespace examples
}  // namespace hyplora
