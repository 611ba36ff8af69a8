// A GoogleTest suite whose tests share one matid-server process (see
// server_process.h), started once by the suite's SetUpTestSuite with
// StartSharedServer(flags) and stopped after its last test. `Suite` (the
// suite's own class) gives every suite a server of its own.
// Tests run on one thread; server_ is set before the first test.
#ifndef MATID_TESTS_SHARED_SERVER_SUITE_H_
#define MATID_TESTS_SHARED_SERVER_SUITE_H_

#include <grpcpp/create_channel.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace matid {

template <typename Suite>
class SharedServerSuite : public ::testing::Test {
 protected:
  static void StartSharedServer(const std::vector<std::string>& flags) {
    auto server = ServerProcess::Start(flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  static void TearDownTestSuite() { server_.reset(); }

  // A plaintext channel to the suite's server; null (and the test failed)
  // when it did not start.
  static std::shared_ptr<grpc::Channel> SharedChannel() {
    EXPECT_NE(server_, nullptr) << "the suite's server did not start";
    if (server_ == nullptr) return nullptr;
    return grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  }

  static inline std::unique_ptr<ServerProcess> server_;
};

}  // namespace matid

#endif  // MATID_TESTS_SHARED_SERVER_SUITE_H_
