// flowfeed/image.h: the pixel buffer that stages read and write.
//
// An Image is a dense, row-major HWC buffer of uint8 or float32 (no row padding). flowfeed uses
// its own type rather than cv::Mat so that a plugin author needs only flowfeed's headers; a stage
// that wants OpenCV wraps data() in a cv::Mat header without copying.
//
// Storage is shared: copying an Image is cheap and both copies see the same bytes. That lets a
// cache hand out views of what it holds. Cached images are immutable by contract: a stage never
// writes into an image it did not allocate; it writes into Reshape()d storage, which allocates
// fresh memory whenever the current storage is shared and reuses it (no allocation) otherwise.
//
// Thread-safety: an Image may be read from many threads; writing needs exclusive access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace flowfeed {

enum class DType : uint8_t { kUInt8, kFloat32 };

inline size_t DTypeSize(DType t) { return t == DType::kUInt8 ? 1 : 4; }
const char* DTypeName(DType t);

class Image {
 public:
  Image() = default;

  // A new image with its own storage; contents are uninitialised.
  static Image Allocate(int height, int width, int channels, DType dtype = DType::kUInt8);

  // Gives this image the shape; keeps the storage when it is unshared and large enough (the
  // contents are then whatever was there), else allocates. Never writes into shared storage.
  void Reshape(int height, int width, int channels, DType dtype = DType::kUInt8);

  // A deep copy with storage of its own.
  Image Clone() const;

  // An image over storage that someone else manages (the cache's arena): `storage` keeps it
  // alive and must hold at least `capacity` >= height * width * channels * DTypeSize bytes.
  static Image Wrap(std::shared_ptr<uint8_t[]> storage, size_t capacity, int height, int width,
                    int channels, DType dtype);

  // Drops the shape (the storage is kept for reuse when unshared).
  void Clear() { height_ = width_ = channels_ = 0; }

  bool empty() const { return height_ == 0 || width_ == 0 || channels_ == 0; }
  int height() const { return height_; }
  int width() const { return width_; }
  int channels() const { return channels_; }
  DType dtype() const { return dtype_; }
  size_t row_bytes() const { return size_t(width_) * channels_ * DTypeSize(dtype_); }
  size_t size_bytes() const { return row_bytes() * height_; }
  // Bytes the storage actually holds (>= size_bytes(); more when a larger shape was reshaped
  // down). What an Image kept alive costs in memory.
  size_t capacity_bytes() const { return storage_ ? capacity_ : 0; }
  // True when another Image shares this storage (so writing would be wrong). False also means
  // that whatever the former co-owners did with the bytes before letting go (on any thread)
  // happens before what the caller does next. use_count() alone is a relaxed load that orders
  // nothing, so a copy of the handle is made and dropped: its decrement (acq_rel) pairs with
  // theirs. (A cache view handed back by the disk cache's writer thread was reused unordered.)
  bool shared() const {
    if (!storage_) return false;
    if (storage_.use_count() > 1) return true;
    { std::shared_ptr<uint8_t[]> sync = storage_; }
    return false;
  }

  // shared() without its ordering: for counting bytes, never before reading or writing pixels.
  // A relaxed load instead of two atomic read-modify-writes (the byte budget asks it per step).
  bool shared_for_accounting() const { return storage_ && storage_.use_count() > 1; }

  uint8_t* data() { return storage_.get(); }
  const uint8_t* data() const { return storage_.get(); }
  template <typename T>
  T* row(int y) { return reinterpret_cast<T*>(data() + size_t(y) * row_bytes()); }
  template <typename T>
  const T* row(int y) const { return reinterpret_cast<const T*>(data() + size_t(y) * row_bytes()); }

  // "3x224x224 float32" style description for error messages (CxHxW).
  std::string ShapeString() const;

 private:
  std::shared_ptr<uint8_t[]> storage_;
  size_t capacity_ = 0;
  int height_ = 0, width_ = 0, channels_ = 0;
  DType dtype_ = DType::kUInt8;
};

}  // namespace flowfeed
