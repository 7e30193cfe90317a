// Its register function throws.
#include <flowfeed/plugin.h>

#include <stdexcept>

FLOWFEED_PLUGIN("thrower", "1.0.0", registrar) {
  (void)registrar;
  throw std::runtime_error("boom: cannot find my lookup table");
}
