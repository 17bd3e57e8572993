// A consumer program: includes the umbrella header and uses the public API.
#include <hyplora/hyplora.hpp>

#include <cstdio>

int main() {
  std::printf("hyplora %d.%d.%d\n", HYPLORA_VERSION_MAJOR, HYPLORA_VERSION_MINOR,
              HYPLORA_VERSION_PATCH);
  const double s = hyplora::sinhc(0.5);
  return (s > 1.0 && s < 1.1) ? 0 : 1;
}
