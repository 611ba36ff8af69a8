// A Modbus TCP server (libmodbus) over a RegisterBank: one thread serves
// every connection, reads are answered from the bank's registers as they
// are at that moment, writes go to the bank first and are refused with
// exception 2 (illegal data address) when it refuses them. Peers outside
// the allow-list are disconnected at once, and at most max_connections are
// open. Modbus TCP has no authentication (docs/SECURITY.md): bind to
// loopback unless the PLC network is the boundary.
// Thread-safety: Create, then Start once; Stop and the destructor from
// the owning thread. The bank is called from the server's thread.
#ifndef MATID_CLIENT_PLC_MODBUS_SERVER_H_
#define MATID_CLIENT_PLC_MODBUS_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/plc/register_map.h"

namespace matid::plc {

class RegisterBank {
 public:
  virtual ~RegisterBank() = default;
  // The registers as a PLC reads them now (the heartbeat follows `now`).
  virtual Registers Read(absl::Time now) = 0;
  // A PLC's write; an error refuses it whole.
  virtual absl::Status Write(int address, const std::vector<uint16_t>& values) = 0;
};

struct ModbusServerOptions {
  std::string host = "127.0.0.1";       // IPv4 address to bind
  int port = 502;                       // 1..65535
  std::set<std::string> allowed_peers;  // IPv4 addresses; empty: any peer
  int max_connections = 4;
};

// OK, or INVALID_ARGUMENT naming the flag of the first bad option.
absl::Status ValidateModbusServerOptions(const ModbusServerOptions& options);

class ModbusServer {
 public:
  // Binds and listens. INVALID_ARGUMENT naming the flag for a bad option;
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ModbusServer>> Create(const ModbusServerOptions& options,
                                                              RegisterBank* bank);
  ~ModbusServer();
  ModbusServer(const ModbusServer&) = delete;
  ModbusServer& operator=(const ModbusServer&) = delete;

  void Start();
  void Stop();

 private:
  struct Context;
  ModbusServer(const ModbusServerOptions& options, RegisterBank* bank,
               std::unique_ptr<Context> context);
  void Serve();
  void Accept();
  // Answers one request on `fd`; false when the peer closed or broke it.
  bool Answer(int fd);

  const ModbusServerOptions options_;
  RegisterBank* const bank_;
  std::unique_ptr<Context> context_;
  std::vector<int> clients_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace matid::plc

#endif  // MATID_CLIENT_PLC_MODBUS_SERVER_H_
