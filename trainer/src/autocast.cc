// AutocastScope over the two autocast APIs this project builds against: LibTorch 2.x takes a
// device type (set_autocast_enabled(kCUDA, ...)); Debian's 1.13 has one call per device type
// (set_enabled for CUDA, set_cpu_enabled for the CPU).

#include "autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace flowfeed {

namespace {

#if TORCH_VERSION_MAJOR >= 2
bool Enabled(torch::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
void SetEnabled(torch::DeviceType t, bool on) { at::autocast::set_autocast_enabled(t, on); }
at::ScalarType Dtype(torch::DeviceType t) { return at::autocast::get_autocast_dtype(t); }
void SetDtype(torch::DeviceType t, at::ScalarType d) { at::autocast::set_autocast_dtype(t, d); }
#else
bool Enabled(torch::DeviceType t) {
  return t == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void SetEnabled(torch::DeviceType t, bool on) {
  if (t == torch::kCUDA)
    at::autocast::set_enabled(on);
  else
    at::autocast::set_cpu_enabled(on);
}
at::ScalarType Dtype(torch::DeviceType t) {
  return t == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                           : at::autocast::get_autocast_cpu_dtype();
}
void SetDtype(torch::DeviceType t, at::ScalarType d) {
  if (t == torch::kCUDA)
    at::autocast::set_autocast_gpu_dtype(d);
  else
    at::autocast::set_autocast_cpu_dtype(d);
}
#endif

}  // namespace

AutocastScope::AutocastScope(const torch::Device& device, bool enabled)
    : enabled_(enabled), type_(device.type()) {
  if (!enabled_) return;
  was_enabled_ = Enabled(type_);
  was_dtype_ = Dtype(type_);
  SetEnabled(type_, true);
  SetDtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(type_, was_enabled_);
  SetDtype(type_, was_dtype_);
}

}  // namespace flowfeed
