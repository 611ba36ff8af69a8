#include "client/plc/modbus_server.h"

#include <arpa/inet.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace matid::plc {

struct ModbusServer::Context {
  ~Context() {
    if (listen_fd >= 0) close(listen_fd);
    if (mapping != nullptr) modbus_mapping_free(mapping);
    if (modbus != nullptr) modbus_free(modbus);
  }
  modbus_t* modbus = nullptr;
  modbus_mapping_t* mapping = nullptr;
  int listen_fd = -1;
};

namespace {

constexpr int kFunctionWriteRegister = 0x06;
constexpr int kFunctionWriteRegisters = 0x10;
constexpr int kFunctionMaskWrite = 0x16;
constexpr int kFunctionReadWriteRegisters = 0x17;

uint16_t Word(const uint8_t* bytes) { return static_cast<uint16_t>((bytes[0] << 8) | bytes[1]); }

std::string PeerAddress(const sockaddr_in& peer) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  return text;
}

}  // namespace

absl::Status ValidateModbusServerOptions(const ModbusServerOptions& options) {
  in_addr parsed{};
  if (inet_pton(AF_INET, options.host.c_str(), &parsed) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--modbus_host must be an IPv4 address, not '", options.host, "'"));
  }
  if (options.port < 1 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--modbus_port must be in 1..65535"));
  }
  for (const std::string& peer : options.allowed_peers) {
    if (inet_pton(AF_INET, peer.c_str(), &parsed) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--allowed_peers: '", peer, "' is not an IPv4 address"));
    }
  }
  if (options.max_connections < 1 || options.max_connections > 64) {
    return absl::InvalidArgumentError("--modbus_max_connections must be in 1..64");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModbusServer>> ModbusServer::Create(
    const ModbusServerOptions& options, RegisterBank* bank) {
  if (absl::Status valid = ValidateModbusServerOptions(options); !valid.ok()) return valid;
  auto context = std::make_unique<Context>();
  context->modbus = modbus_new_tcp(options.host.c_str(), options.port);
  context->mapping = modbus_mapping_new_start_address(0, 0, 0, 0, 0, kRegisterCount, 0, 0);
  if (context->modbus == nullptr || context->mapping == nullptr) {
    return absl::InternalError(absl::StrCat("libmodbus: ", modbus_strerror(errno)));
  }
  // A peer that sends half a request holds the server thread this long.
  modbus_set_byte_timeout(context->modbus, 0, 100000);
  modbus_set_indication_timeout(context->modbus, 0, 100000);
  context->listen_fd = modbus_tcp_listen(context->modbus, options.max_connections);
  if (context->listen_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port,
                     " (--modbus_host, --modbus_port): ", modbus_strerror(errno)));
  }
  return std::unique_ptr<ModbusServer>(new ModbusServer(options, bank, std::move(context)));
}

ModbusServer::ModbusServer(const ModbusServerOptions& options, RegisterBank* bank,
                           std::unique_ptr<Context> context)
    : options_(options), bank_(bank), context_(std::move(context)) {}

ModbusServer::~ModbusServer() {
  Stop();
  for (int fd : clients_) close(fd);
}

void ModbusServer::Start() {
  thread_ = std::thread([this] { Serve(); });
}

void ModbusServer::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void ModbusServer::Serve() {
  while (!stopping_) {
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(context_->listen_fd, &readable);
    int highest = context_->listen_fd;
    for (int fd : clients_) {
      FD_SET(fd, &readable);
      highest = std::max(highest, fd);
    }
    timeval wake{0, 100000};  // to see Stop()
    if (select(highest + 1, &readable, nullptr, nullptr, &wake) <= 0) continue;
    if (FD_ISSET(context_->listen_fd, &readable)) Accept();
    std::vector<int> open;
    for (int fd : clients_) {
      if (!FD_ISSET(fd, &readable) || Answer(fd)) {
        open.push_back(fd);
      } else {
        close(fd);
      }
    }
    clients_ = std::move(open);
  }
}

void ModbusServer::Accept() {
  sockaddr_in peer{};
  socklen_t length = sizeof(peer);
  const int fd =
      accept4(context_->listen_fd, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC);
  if (fd < 0) return;
  const std::string address = PeerAddress(peer);
  if (!options_.allowed_peers.empty() && options_.allowed_peers.count(address) == 0) {
    LogWarning("Modbus connection from %s refused: not in --allowed_peers", address);
    close(fd);
    return;
  }
  if (static_cast<int>(clients_.size()) >= options_.max_connections) {
    LogWarning("Modbus connection from %s refused: %d open (--modbus_max_connections)", address,
               options_.max_connections);
    close(fd);
    return;
  }
  LogInfo("Modbus connection from %s", address);
  clients_.push_back(fd);
}

bool ModbusServer::Answer(int fd) {
  modbus_t* modbus = context_->modbus;
  modbus_set_socket(modbus, fd);
  uint8_t request[MODBUS_TCP_MAX_ADU_LENGTH];
  const int length = modbus_receive(modbus, request);
  if (length == 0) return true;  // another unit's request, ignored
  if (length < 0) return false;  // closed, broken or half a request
  const int header = modbus_get_header_length(modbus);
  const int function = request[header];
  if (function == kFunctionMaskWrite || function == kFunctionReadWriteRegisters) {
    return modbus_reply_exception(modbus, request, MODBUS_EXCEPTION_ILLEGAL_FUNCTION) >= 0;
  }
  std::vector<uint16_t> values;
  if (function == kFunctionWriteRegister && length >= header + 5) {
    values.push_back(Word(&request[header + 3]));
  } else if (function == kFunctionWriteRegisters && length >= header + 6) {
    const int count = Word(&request[header + 3]);
    for (int i = 0; i < count && header + 6 + 2 * i + 1 < length; ++i) {
      values.push_back(Word(&request[header + 6 + 2 * i]));
    }
    if (static_cast<int>(values.size()) != count) values.clear();
  }
  const bool writes = function == kFunctionWriteRegister || function == kFunctionWriteRegisters;
  if (writes && !bank_->Write(Word(&request[header + 1]), values).ok()) {
    return modbus_reply_exception(modbus, request, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS) >= 0;
  }
  const Registers registers = bank_->Read(absl::Now());
  std::copy(registers.begin(), registers.end(), context_->mapping->tab_registers);
  return modbus_reply(modbus, request, length, context_->mapping) >= 0;
}

}  // namespace matid::plc
