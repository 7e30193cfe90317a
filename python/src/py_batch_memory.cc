// PythonBatchMemory (py_batch_memory.h).
#include "py_batch_memory.h"

#include <stdexcept>
#include <utility>

namespace py = pybind11;

namespace flowfeed::python {

namespace {

bool Finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

// Drops a Python object from any thread: under the GIL, or not at all once the interpreter is
// going away (taking the GIL then would block or end the thread).
void Release(py::object* o) {
  if (!Py_IsInitialized() || Finalizing()) {
    (void)o->release();  // left to the process's exit
  } else {
    py::gil_scoped_acquire gil;
    *o = py::object();
  }
  delete o;
}

class PythonAllocator final : public BatchAllocator {
 public:
  PythonAllocator(py::function allocate, std::string name)
      : allocate_(new py::object(std::move(allocate))), name_(std::move(name)) {}
  ~PythonAllocator() override { Release(allocate_); }

  BatchBlock Allocate(size_t bytes) override {
    py::gil_scoped_acquire gil;
    try {
      auto block = std::make_unique<py::object>((*allocate_)(bytes));
      const auto ptr = (*block).attr("data_ptr")().cast<uintptr_t>();
      const auto got = (*block).attr("numel")().cast<size_t>() *
                       (*block).attr("element_size")().cast<size_t>();
      if (got < bytes || ptr == 0)
        throw std::runtime_error("batch memory '" + name_ + "': asked for " +
                                 std::to_string(bytes) + " bytes, the allocate function gave " +
                                 std::to_string(got));
      BatchBlock b;
      b.data = reinterpret_cast<uint8_t*>(ptr);
      b.size = got;
      b.owner = std::shared_ptr<void>(block.release(),
                                      [](void* p) { Release(static_cast<py::object*>(p)); });
      return b;
    } catch (py::error_already_set& e) {
      // The Python exception goes no further than this thread: its text travels instead.
      const std::string what = e.what();
      e.restore();
      PyErr_Clear();
      throw std::runtime_error("batch memory '" + name_ + "': the allocate function raised " +
                               what);
    } catch (const py::cast_error& e) {
      throw std::runtime_error("batch memory '" + name_ +
                               "': the allocate function must return a tensor (an object with "
                               "data_ptr(), numel() and element_size()): " + e.what());
    }
  }

  std::string name() const override { return name_; }

 private:
  py::object* allocate_;  // owned; released under the GIL (Release)
  std::string name_;
};

}  // namespace

std::shared_ptr<BatchAllocator> PythonBatchMemory(py::function allocate, std::string name) {
  return std::make_shared<PythonAllocator>(std::move(allocate), std::move(name));
}

}  // namespace flowfeed::python
