// tfrecord.h: the bytes of a TensorBoard event file, written without TensorFlow or protobuf.
//
// An event file is a sequence of TFRecords: an 8-byte little-endian payload length, the masked
// CRC-32C of those 8 bytes, the payload, the masked CRC-32C of the payload. Each payload is a
// serialised tensorflow.Event: wall_time (field 1, double), step (2, int64), and either
// file_version (3, string; the first record, "brain.Event:2") or summary (5, Summary: repeated
// Value (1) of tag (1, string) and simple_value (2, float)). Those few fields are encoded here by
// hand: they are the format's stable core, read by every TensorBoard since 1.x.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowfeed::tfrecord {

// CRC-32C (Castagnoli), as TFRecord uses: Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view data);
// The CRC TFRecord stores: rotated right by 15 bits plus a constant, so that a CRC of data
// holding CRCs stays strong.
uint32_t MaskedCrc32c(std::string_view data);

// Appends one framed record holding `payload` to *out.
void AppendRecord(std::string_view payload, std::string* out);

// The serialised Event that starts every event file.
std::string FileVersionEvent(double wall_time);
// A serialised Event holding one scalar per (tag, value), in order.
std::string ScalarsEvent(double wall_time, int64_t step,
                         const std::vector<std::pair<std::string, float>>& scalars);

}  // namespace flowfeed::tfrecord
