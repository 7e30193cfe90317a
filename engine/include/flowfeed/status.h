// flowfeed/status.h: the error type of flowfeed's public API.
//
// A Status is either OK or carries a code and a message that names what failed (the file, the
// config key, the stage). Result<T> is a value or a non-OK Status. Functions of the public API
// return these for expected failures (bad input, missing files); they throw only for programmer
// errors (calling value() on an error Result).
//
// Thread-safety: plain values; distinct objects may be used from distinct threads.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace flowfeed {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // a bad config value or parameter
  kNotFound,           // a missing file, folder, stage type or key
  kIoError,            // the OS refused a read or write
  kCorrupt,            // the bytes are not what their format says (bad JPEG, short IDX)
  kUnsupported,        // a valid input that flowfeed does not handle
  kCancelled,          // the run was cancelled (Cancel(), a signal)
  kResourceExhausted,  // a limit was hit (pixels, memory, disk)
  kInternal,           // a bug: please report it
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: photos/a.jpg: not a JPEG file" (or "OK").
  std::string ToString() const;

  // Returns a copy whose message is "prefix: message"; OK stays OK.
  Status WithContext(const std::string& prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value of type T, or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::Internal("Result constructed from an OK status");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  // Programmer error to call on a non-OK Result: throws std::logic_error with the status.
  T& value() & { Check(); return *value_; }
  const T& value() const& { Check(); return *value_; }
  T&& value() && { Check(); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  void Check() const {
    if (!status_.ok()) throw std::logic_error("Result::value() on error: " + status_.ToString());
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace flowfeed

// Returns from the enclosing function when the expression's Status is not OK.
#define FLOWFEED_RETURN_IF_ERROR(expr)        \
  do {                                        \
    ::flowfeed::Status _ff_status = (expr);   \
    if (!_ff_status.ok()) return _ff_status;  \
  } while (0)
