// matid-server's program: its flags, the server they describe, and the run
// loop (serve until SIGTERM/SIGINT, rescan on SIGHUP, drain, exit 0).
// server/main.cc calls it with no decorator. A test build may pass one that
// wraps every loaded model backend (tests/gated_server_main.cc holds the
// model at a gate the test controls); the shipped binary has no such hook.
// Call once, from main, before any thread starts.
#ifndef MATID_SERVER_SERVER_MAIN_H_
#define MATID_SERVER_SERVER_MAIN_H_

#include <functional>
#include <memory>

#include "server/backend/model_backend.h"

namespace matid {

// Wraps a freshly loaded (and warmed-up) backend; returns the one to serve.
using BackendDecorator =
    std::function<std::unique_ptr<ModelBackend>(std::unique_ptr<ModelBackend>)>;

// Returns the process exit code.
int RunServerMain(int argc, char** argv, const BackendDecorator& decorate);

}  // namespace matid

#endif  // MATID_SERVER_SERVER_MAIN_H_
