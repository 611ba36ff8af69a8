// matid-server: parses flags, loads the model, serves until SIGTERM/SIGINT,
// then drains and exits 0 (server_main.h).

#include "server/server_main.h"

int main(int argc, char** argv) { return matid::RunServerMain(argc, argv, nullptr); }
