// good.cc rebuilt with a change: the same plugin name, version and stage names, but test_invert
// gives 254 - pixel. The cache fingerprint must see new code behind the same names.
#define FLOWFEED_TEST_INVERT_FROM 254
#include "good.cc"
