// handout.cc: Batch -> DLPack tensors (handout.h).
#include "handout.h"

#include <Python.h>

#include <cstring>

namespace flowfeed::python {
namespace {

// What a DLManagedTensor owns: a reference to the handout and its shape and strides.
struct TensorContext {
  std::shared_ptr<Handout> handout;
  std::vector<int64_t> shape;
};

void DeleteManaged(DLManagedTensor* self) {
  delete static_cast<TensorContext*>(self->manager_ctx);
  delete self;
}

DLManagedTensor* MakeTensor(std::shared_ptr<Handout> handout, void* data, DLDataType type,
                            std::vector<int64_t> shape) {
  auto* ctx = new TensorContext{std::move(handout), std::move(shape)};
  auto* t = new DLManagedTensor{};
  t->dl_tensor.data = data;
  t->dl_tensor.device = DLDevice{kDLCPU, 0};
  t->dl_tensor.ndim = int32_t(ctx->shape.size());
  t->dl_tensor.dtype = type;
  t->dl_tensor.shape = ctx->shape.data();
  t->dl_tensor.strides = nullptr;  // compact, row-major
  t->dl_tensor.byte_offset = 0;
  t->manager_ctx = ctx;
  t->deleter = DeleteManaged;
  return t;
}

}  // namespace

Handout::Handout(BatchPtr batch, std::shared_ptr<HandoutCounter> counter)
    : batch_(std::move(batch)), counter_(std::move(counter)) {
  counter_->held.fetch_add(1, std::memory_order_relaxed);
}

std::shared_ptr<Handout> Handout::Copy(const Batch& batch,
                                       std::shared_ptr<HandoutCounter> counter) {
  std::shared_ptr<Handout> h(new Handout());
  auto copy = std::make_shared<Batch>(batch);  // a recycled buffer may be larger than this batch
  copy->data_.Truncate(batch.bytes());
  h->meta_view_ = std::move(copy);
  h->counter_ = std::move(counter);
  h->counter_->copies.fetch_add(1, std::memory_order_relaxed);
  return h;
}

Handout::~Handout() {
  if (batch_) counter_->held.fetch_sub(1, std::memory_order_relaxed);
}

DLManagedTensor* Handout::Images(const std::shared_ptr<Handout>& self) const {
  const Batch& b = meta();
  DLDataType type = b.dtype == DType::kUInt8 ? DLDataType{kDLUInt, 8, 1}
                                             : DLDataType{kDLFloat, 32, 1};
  // DLPack wants a non-null pointer even for an empty tensor.
  static uint8_t empty = 0;
  void* data = b.bytes() > 0 ? const_cast<uint8_t*>(b.data()) : &empty;
  return MakeTensor(self, data, type, b.shape());
}

DLManagedTensor* Handout::Labels(const std::shared_ptr<Handout>& self) const {
  const Batch& b = meta();
  static int64_t empty = 0;
  void* data = b.labels.empty() ? &empty : const_cast<int64_t*>(b.labels.data());
  return MakeTensor(self, data, DLDataType{kDLInt, 64, 1}, {int64_t(b.labels.size())});
}

void DeleteUnusedDlpackCapsule(void* capsule_object) {
  auto* capsule = static_cast<PyObject*>(capsule_object);
  // A consumer renames the capsule "used_dltensor" and owns the tensor from then on.
  if (!PyCapsule_IsValid(capsule, kDlpackCapsuleName)) return;
  auto* t = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, kDlpackCapsuleName));
  if (t && t->deleter) t->deleter(t);
}

}  // namespace flowfeed::python
