// tfrecord.cc: TFRecord framing and the few tensorflow.Event fields a scalar log needs
// (tfrecord.h says which).
#include "tfrecord.h"

#include <array>
#include <cstring>

namespace flowfeed::tfrecord {
namespace {

// The reflected CRC-32C table (polynomial 0x82F63B78), built once.
const std::array<uint32_t, 256>& Crc32cTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// Protocol-buffer wire format: a key is (field << 3) | wire type.
constexpr uint8_t kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out->push_back(char(uint8_t(v)));
}

void PutKey(int field, uint8_t wire_type, std::string* out) {
  PutVarint(uint64_t(field) << 3 | wire_type, out);
}

template <typename T>
void PutLittleEndian(T v, std::string* out) {
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // flowfeed builds for little-endian machines only
  out->append(reinterpret_cast<const char*>(bytes), sizeof(T));
}

void PutBytes(int field, std::string_view bytes, std::string* out) {
  PutKey(field, kBytes, out);
  PutVarint(bytes.size(), out);
  out->append(bytes);
}

// Event's wall_time and step, the fields every event starts with.
std::string EventHead(double wall_time, int64_t step) {
  std::string e;
  PutKey(1, kFixed64, &e);
  PutLittleEndian(wall_time, &e);
  if (step != 0) {  // proto3: a zero scalar is not written
    PutKey(2, kVarint, &e);
    PutVarint(uint64_t(step), &e);
  }
  return e;
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  const auto& table = Crc32cTable();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(std::string_view data) {
  const uint32_t c = Crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

void AppendRecord(std::string_view payload, std::string* out) {
  std::string length;
  PutLittleEndian(uint64_t(payload.size()), &length);
  out->append(length);
  PutLittleEndian(MaskedCrc32c(length), out);
  out->append(payload);
  PutLittleEndian(MaskedCrc32c(payload), out);
}

std::string FileVersionEvent(double wall_time) {
  std::string e = EventHead(wall_time, 0);
  PutBytes(3, "brain.Event:2", &e);
  return e;
}

std::string ScalarsEvent(double wall_time, int64_t step,
                         const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    PutBytes(1, tag, &v);
    PutKey(2, kFixed32, &v);
    PutLittleEndian(value, &v);
    PutBytes(1, v, &summary);
  }
  std::string e = EventHead(wall_time, step);
  PutBytes(5, summary, &e);
  return e;
}

}  // namespace flowfeed::tfrecord
