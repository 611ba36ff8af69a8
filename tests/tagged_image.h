// A 4x4 raw gray request image whose every pixel is `tag`: the fake model
// (fake_backend.h) answers it with class `tag` mod its label count, so a
// test can tell which request a response belongs to. Pure function.
#ifndef MATID_TESTS_TAGGED_IMAGE_H_
#define MATID_TESTS_TAGGED_IMAGE_H_

#include <string>

#include "matid/v1/matid.pb.h"

namespace matid {

inline v1::Image TaggedImage(int tag) {
  v1::Image image;
  v1::RawImage* raw = image.mutable_raw();
  raw->set_width(4);
  raw->set_height(4);
  raw->set_format(v1::PIXEL_FORMAT_GRAY8);
  raw->set_pixels(std::string(16, static_cast<char>(tag)));
  return image;
}

}  // namespace matid

#endif  // MATID_TESTS_TAGGED_IMAGE_H_
