// Registers nothing.
#include <flowfeed/plugin.h>

FLOWFEED_PLUGIN("empty", "1.0.0", registrar) { (void)registrar; }
