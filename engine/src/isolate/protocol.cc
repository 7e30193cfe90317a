// isolate/protocol.cc: the setup encoding, replies and the shared memory's mapping.
#include "isolate/protocol.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "flowfeed/image.h"
#include "flowfeed/util/file.h"

namespace flowfeed::isolate {

Reply MakeReply(const Status& status) {
  Reply r;
  r.code = int32_t(status.code());
  const std::string& m = status.message();
  r.message_bytes = uint32_t(std::min(m.size(), sizeof r.message));
  std::memcpy(r.message, m.data(), r.message_bytes);
  return r;
}

Status ReplyStatus(const Reply& reply, size_t received) {
  const size_t head = offsetof(Reply, message);
  if (received < head || reply.message_bytes > sizeof reply.message ||
      received < head + reply.message_bytes)
    return Status::Internal("the stage worker sent a malformed reply (" +
                            std::to_string(received) + " bytes)");
  if (reply.code == 0) return Status::Ok();
  return Status(StatusCode(reply.code), std::string(reply.message, reply.message_bytes));
}

Status CheckResult(const SampleHeader& h, uint64_t shared_bytes) {
  auto bad = [&](const std::string& what) {
    return Status::Internal("the stage worker sent an invalid result: " + what);
  };
  if (h.image_bytes == 0) return Status::Ok();
  if (h.dtype > uint32_t(DType::kFloat32)) return bad("dtype " + std::to_string(h.dtype));
  if (h.height < 1 || h.height > kMaxResultSide || h.width < 1 || h.width > kMaxResultSide ||
      h.channels < 1 || h.channels > kMaxResultChannels)
    return bad("shape " + std::to_string(h.height) + "x" + std::to_string(h.width) + "x" +
               std::to_string(h.channels));
  const uint64_t expected = uint64_t(h.height) * uint64_t(h.width) * uint64_t(h.channels) *
                            DTypeSize(DType(h.dtype));
  if (h.image_bytes != expected)
    return bad(std::to_string(h.image_bytes) + " pixel bytes for " + std::to_string(expected));
  if (shared_bytes < kDataOffset || h.image_bytes > shared_bytes - kDataOffset)
    return bad(std::to_string(h.image_bytes) + " pixel bytes beyond the shared memory's " +
               std::to_string(shared_bytes));
  return Status::Ok();
}

// Each parameter as [variant index, value]: JSON alone cannot tell an empty int list from an
// empty float list, nor 2.0 from 2 once a writer drops the ".0".
std::string EncodeSetup(const StageSetup& setup) {
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [name, value] : setup.params.values())
    std::visit([&, &name = name](const auto& v) { params[name] = {value.index(), v}; }, value);
  return nlohmann::json{{"type", setup.type}, {"plugin", setup.plugin}, {"params", params}}.dump();
}

namespace {
template <size_t I>
ParamValue ParamAt(const nlohmann::json& v) {
  return ParamValue(std::in_place_index<I>, v.get<std::variant_alternative_t<I, ParamValue>>());
}
}  // namespace

Result<StageSetup> DecodeSetup(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    StageSetup setup;
    setup.type = j.at("type").get<std::string>();
    setup.plugin = j.at("plugin").get<std::string>();
    using Decode = ParamValue (*)(const nlohmann::json&);
    static constexpr Decode kDecoders[] = {ParamAt<0>, ParamAt<1>, ParamAt<2>,
                                           ParamAt<3>, ParamAt<4>, ParamAt<5>};
    static_assert(std::size(kDecoders) == std::variant_size_v<ParamValue>);
    for (const auto& [name, pair] : j.at("params").items()) {
      const size_t index = pair.at(0).get<size_t>();
      if (index >= std::size(kDecoders)) throw std::out_of_range("parameter type " + name);
      setup.params.Set(name, kDecoders[index](pair.at(1)));
    }
    return setup;
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("malformed stage setup: ") + e.what());
  }
}

SharedMemory::~SharedMemory() {
  if (data_) ::munmap(data_, mapped_);
}

Status SharedMemory::Fit(size_t bytes) {
  if (bytes <= mapped_) return Status::Ok();
  struct stat st;
  if (::fstat(fd_, &st) != 0)
    return Status::IoError(ErrnoMessage("shared memory: fstat", errno));
  size_t file = size_t(st.st_size);
  if (file < bytes) {
    // Doubling keeps a run of ever larger samples to a few remaps.
    file = std::max(bytes, 2 * file);
    if (::ftruncate(fd_, off_t(file)) != 0)
      return Status::IoError(
          ErrnoMessage("shared memory: cannot grow to " + std::to_string(file) + " bytes", errno));
  }
  if (data_) ::munmap(data_, mapped_);
  data_ = nullptr;
  mapped_ = 0;
  void* p = ::mmap(nullptr, file, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED)
    return Status::IoError(
        ErrnoMessage("shared memory: cannot map " + std::to_string(file) + " bytes", errno));
  data_ = static_cast<uint8_t*>(p);
  mapped_ = file;
  return Status::Ok();
}

}  // namespace flowfeed::isolate
