// Who made a model version. Loading TorchScript is close to running code,
// and the digests in metadata.json only show that the files are intact, so a
// box can require versions signed by a key it trusts: `model_export publish
// --signing_key KEY` writes signature.ed25519 (64 raw bytes), an Ed25519
// signature over the exact bytes of the version's metadata.json, which
// records every file's sha256. The server (--trusted_model_keys, PEM public
// keys) verifies that signature over the metadata bytes it then parses, and
// hashes the very bytes of the model file it loads (torch_backend.h), so
// nothing can be swapped between the check and the load.
// Thread-safety: TrustedModelKeys is immutable after Load(): Verify() from
// any thread.
#ifndef MATID_SERVER_BACKEND_MODEL_SIGNATURE_H_
#define MATID_SERVER_BACKEND_MODEL_SIGNATURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace matid {

inline constexpr char kModelSignatureFile[] = "signature.ed25519";

class TrustedModelKeys {
 public:
  // Reads each PEM file (an Ed25519 public key, as `openssl pkey -pubout`
  // writes it). INVALID_ARGUMENT naming --trusted_model_keys and the file
  // when one cannot be read or is not an Ed25519 public key.
  static absl::StatusOr<std::shared_ptr<const TrustedModelKeys>> Load(
      const std::vector<std::string>& pem_files);
  ~TrustedModelKeys();

  // OK when one of the keys verifies `signature` over `metadata` (the bytes
  // of metadata.json); FAILED_PRECONDITION naming `model_dir` otherwise.
  absl::Status Verify(absl::string_view metadata, absl::string_view signature,
                      const std::string& model_dir) const;

  size_t size() const { return keys_.size(); }

 private:
  struct Key;
  TrustedModelKeys() = default;
  std::vector<std::unique_ptr<Key>> keys_;
  std::vector<std::string> names_;  // the PEM files, for messages
};

// The lowercase hex sha256 of `bytes`.
std::string Sha256Hex(absl::string_view bytes);

}  // namespace matid

#endif  // MATID_SERVER_BACKEND_MODEL_SIGNATURE_H_
