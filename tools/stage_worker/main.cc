// flowfeed-stage-worker: runs one pipeline stage for a flowfeed process that started it
// (`isolate: process`, docs/plugins.md). Not meant to be run by hand: it serves the descriptors
// its parent passed (engine/src/isolate/protocol.h).
#include "isolate/worker_main.h"

int main() { return flowfeed::isolate::RunStageWorker(); }
