#include "flowfeed/image.h"

#include <cstring>

namespace flowfeed {

const char* DTypeName(DType t) { return t == DType::kUInt8 ? "uint8" : "float32"; }

Image Image::Allocate(int height, int width, int channels, DType dtype) {
  Image img;
  img.Reshape(height, width, channels, dtype);
  return img;
}

void Image::Reshape(int height, int width, int channels, DType dtype) {
  size_t need = size_t(height) * width * channels * DTypeSize(dtype);
  if (!storage_ || shared() || capacity_ < need) {
    // 64-byte alignment keeps vector loads on whole cache lines; new[] of a shared_ptr<T[]>
    // gives only 16, so over-allocate through the aligned operator new.
    size_t cap = need == 0 ? 64 : need;
    auto* raw = static_cast<uint8_t*>(::operator new[](cap, std::align_val_t(64)));
    storage_ = std::shared_ptr<uint8_t[]>(
        raw, [](uint8_t* p) { ::operator delete[](p, std::align_val_t(64)); });
    capacity_ = cap;
  }
  height_ = height;
  width_ = width;
  channels_ = channels;
  dtype_ = dtype;
}

Image Image::Clone() const {
  Image out = Allocate(height_, width_, channels_, dtype_);
  if (size_bytes() > 0) std::memcpy(out.data(), data(), size_bytes());
  return out;
}

Image Image::Wrap(std::shared_ptr<uint8_t[]> storage, size_t capacity, int height, int width,
                  int channels, DType dtype) {
  Image img;
  img.storage_ = std::move(storage);
  img.capacity_ = capacity;
  img.height_ = height;
  img.width_ = width;
  img.channels_ = channels;
  img.dtype_ = dtype;
  return img;
}

std::string Image::ShapeString() const {
  return std::to_string(channels_) + "x" + std::to_string(height_) + "x" + std::to_string(width_) +
         " " + DTypeName(dtype_);
}

}  // namespace flowfeed
