// isolate/worker_main.h (internal): the stage worker program's body (protocol.h describes what
// it is handed). Only flowfeed-stage-worker calls it.
#pragma once

namespace flowfeed::isolate {

// Serves the host on descriptors kSocketFd and kMemoryFd until the socket closes; returns the
// exit status (0 when the host closed it, 1 when the stage could not be built: the host has
// been told why).
int RunStageWorker();

}  // namespace flowfeed::isolate
