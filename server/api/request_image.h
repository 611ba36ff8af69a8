// Turns the wire form of an image (matid.v1.Image) into the server's view of
// it (ImageRef), refusing a missing image or an unknown pixel format with
// INVALID_ARGUMENT. The view borrows the message's bytes. Pure function,
// safe from any thread.
#ifndef MATID_SERVER_API_REQUEST_IMAGE_H_
#define MATID_SERVER_API_REQUEST_IMAGE_H_

#include "absl/status/statusor.h"
#include "matid/v1/matid.pb.h"
#include "server/core/image.h"

namespace matid {

// REQUIRES: `image` outlives the returned view.
absl::StatusOr<ImageRef> ToImageRef(const v1::Image& image);

}  // namespace matid

#endif  // MATID_SERVER_API_REQUEST_IMAGE_H_
