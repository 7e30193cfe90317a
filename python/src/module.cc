// module.cc: the `flowfeed._flowfeed` extension module: PyPipeline, BatchDigest, the engine's
// version, and the mapping of flowfeed's Status codes to Python exceptions. The public Python
// API is python/flowfeed/__init__.py; this module is its implementation detail.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "flowfeed/config.h"
#include "flowfeed/crash_report.h"
#include "flowfeed/stats.h"
#include "flowfeed/version.h"
#include "handout.h"
#include "py_batch_memory.h"
#include "py_pipeline.h"

namespace py = pybind11;

namespace flowfeed::python {
namespace {

// flowfeed.Error and its subclasses, created at import (see PYBIND11_MODULE below).
PyObject* g_error = nullptr;
PyObject* g_sample_error = nullptr;

// Raises the Python exception for `s`: a config or option problem is ValueError, a missing file
// FileNotFoundError, a bad sample or a budget overrun flowfeed.SampleError, the rest
// flowfeed.Error. The message is flowfeed's own, which names the file, key, sample or plugin.
[[noreturn]] void Raise(const Status& s) {
  PyObject* type = g_error;
  switch (s.code()) {
    case StatusCode::kInvalidArgument: type = PyExc_ValueError; break;
    case StatusCode::kNotFound: type = PyExc_FileNotFoundError; break;
    case StatusCode::kCorrupt:
    case StatusCode::kUnsupported:
    case StatusCode::kResourceExhausted: type = g_sample_error; break;
    default: break;
  }
  PyErr_SetString(type, s.message().c_str());
  throw py::error_already_set();
}

// A DLPack capsule for one of a handout's tensors.
py::capsule Capsule(DLManagedTensor* t) {
  return py::capsule(t, kDlpackCapsuleName, [](PyObject* o) { DeleteUnusedDlpackCapsule(o); });
}

// One tensor of a handout, with the DLPack protocol (__dlpack__, __dlpack_device__), so that
// torch.from_dlpack and numpy.from_dlpack both take it without a copy.
struct TensorRef {
  std::shared_ptr<Handout> handout;
  bool labels = false;
  py::capsule Dlpack(py::object /*stream*/) const {
    return Capsule(labels ? handout->Labels(handout) : handout->Images(handout));
  }
};

py::object NextBatch(PyPipeline& p) {
  std::shared_ptr<Handout> h;
  try {
    h = p.Next();
  } catch (const StatusError& e) {
    Raise(e.status);
  } catch (const PythonErrorSet&) {
    throw py::error_already_set();
  }
  if (!h) return py::none();
  const Batch& b = h->meta();
  py::dict info;
  info["epoch"] = b.epoch;
  info["number"] = b.number;
  info["size"] = b.size;
  info["end_position"] = b.end_position;
  info["copied"] = h->copied();
  return py::make_tuple(TensorRef{h, false}, TensorRef{h, true}, info);
}

py::dict Live(PyPipeline& p) {
  py::dict d;
  if (!p.opened()) return d;
  LiveEpochStats l = p.pipeline().live();
  d["epoch"] = l.epoch;
  d["seconds"] = l.seconds;
  d["samples"] = l.samples;
  d["batches"] = l.batches;
  d["cache_mode"] = l.cache_mode;
  d["cache_hits"] = l.cache_hits;
  d["cache_misses"] = l.cache_misses;
  py::list stages;
  for (const auto& s : l.stages) {
    py::dict sd;
    sd["name"] = s.name;
    sd["busy_seconds"] = s.busy_seconds;
    sd["count"] = s.count;
    stages.append(sd);
  }
  d["stages"] = stages;
  return d;
}

// f(PyPipeline&) with a StatusError raised as its Python exception.
template <typename F>
auto Checked(F f) {
  return [f](PyPipeline& p) -> decltype(f(p)) {
    try {
      return f(p);
    } catch (const StatusError& e) {
      Raise(e.status);
    }
  };
}

}  // namespace
}  // namespace flowfeed::python

PYBIND11_MODULE(_flowfeed, m) {
  using namespace flowfeed;
  using namespace flowfeed::python;
  m.doc() = "flowfeed's engine (internal: use the flowfeed package)";
  m.attr("__version__") = FLOWFEED_VERSION;

  static py::exception<std::runtime_error> error(m, "Error", PyExc_RuntimeError);
  static py::exception<std::runtime_error> sample_error(m, "SampleError", error.ptr());
  g_error = error.ptr();
  g_sample_error = sample_error.ptr();

  // Not installed at import: a library does not take over a process's fatal signals unasked
  // (Python's faulthandler, a debugger, the host's own handler). Chained to whatever was there.
  m.def("install_crash_report",
        [](bool chain, bool catch_exit) {
          CrashReportOptions o;
          o.chain = chain;
          o.catch_exit = catch_exit;
          const Status st = InstallCrashReport(o);
          if (!st.ok()) throw std::runtime_error(st.ToString());
        },
        py::arg("chain") = true, py::arg("catch_exit") = true,
        "On a fatal signal, write to stderr what each pipeline thread was doing (stage, plugin, "
        "sample), then hand the signal to the previous handler (chain=True) or the default; an "
        "exit() inside a stage ends the process with status 70 and the same lines "
        "(catch_exit=True). Once per process; later calls change nothing.");

  py::class_<TensorRef>(m, "_Tensor")
      .def("__dlpack__", &TensorRef::Dlpack, py::arg("stream") = py::none())
      .def("__dlpack_device__", [](const TensorRef&) { return py::make_tuple(int(kDLCPU), 0); });

  py::class_<PyPipeline>(m, "_Pipeline")
      .def(py::init([](const std::string& path, const std::string& text,
                       const std::string& name, const std::vector<std::string>& overrides,
                       const std::vector<std::string>& plugins) {
             try {
               return std::make_unique<PyPipeline>(path, text, name, overrides, plugins);
             } catch (const StatusError& e) {
               Raise(e.status);
             }
           }),
           py::arg("path"), py::arg("text"), py::arg("display_name"), py::arg("overrides"),
           py::arg("plugins"))
      .def("next", &NextBatch)
      .def("set_epochs", &PyPipeline::SetEpochs)
      .def("set_start", &PyPipeline::SetStart)
      .def("set_command_line", &PyPipeline::SetCommandLine)
      .def("set_batch_memory",
           [](PyPipeline& p, py::function allocate, const std::string& name) {
             p.SetBatchMemory(PythonBatchMemory(std::move(allocate), name));
           })
      .def_property_readonly("batch_memory",
                             [](const PyPipeline& p) {
                               return p.options().batch_memory ? p.options().batch_memory->name()
                                                               : std::string("heap");
                             })
      .def("set_metrics", [](PyPipeline& p, const std::string& tensorboard,
                             const std::string& jsonl, const std::string& csv) {
        try {
          p.SetMetrics({tensorboard, jsonl, csv});
        } catch (const StatusError& e) {
          Raise(e.status);
        }
      })
      .def("close", &PyPipeline::Close)
      .def_property_readonly("epochs", [](const PyPipeline& p) { return p.options().epochs; })
      .def_property_readonly("batch_size",
                             [](const PyPipeline& p) { return p.options().batch.size; })
      .def_property_readonly("prefetch", [](const PyPipeline& p) { return p.options().prefetch; })
      .def_property_readonly("opened", &PyPipeline::opened)
      .def("batches_per_epoch",
           Checked([](PyPipeline& p) { return p.pipeline().batches_per_epoch(); }))
      .def("epoch_length", Checked([](PyPipeline& p) { return p.pipeline().epoch_length(); }))
      .def("dataset_size", Checked([](PyPipeline& p) { return p.pipeline().dataset_size(); }))
      .def("num_classes", Checked([](PyPipeline& p) { return p.pipeline().num_classes(); }))
      .def("report_json",
           Checked([](PyPipeline& p) { return ReportJson(p.pipeline().stats()); }))
      .def("epoch_table", Checked([](PyPipeline& p) {
             RunStats rs = p.pipeline().stats();
             return rs.epochs.empty() ? std::string() : FormatEpochTable(rs.epochs.back());
           }))
      .def("live", &Live)
      .def_property_readonly("held", [](const PyPipeline& p) { return p.counter().held.load(); })
      .def_property_readonly("copies",
                             [](const PyPipeline& p) { return p.counter().copies.load(); })
      .def_property_readonly("copy_threshold", &PyPipeline::copy_threshold);

  py::class_<BatchDigest>(m, "BatchDigest")
      .def(py::init<>())
      .def("reset", &BatchDigest::Reset)
      .def("add_batch",
           [](BatchDigest& d, py::buffer images, py::buffer labels, size_t samples) {
             py::buffer_info im = images.request(), lb = labels.request();
             if (lb.itemsize != 8 || size_t(lb.size) != samples)
               throw py::value_error("labels: expected " + std::to_string(samples) + " int64");
             const size_t bytes = size_t(im.size) * size_t(im.itemsize);
             if (samples == 0 || bytes % samples != 0)
               throw py::value_error("images: not a whole number of samples");
             d.AddBatch(static_cast<const uint8_t*>(im.ptr), bytes / samples, samples,
                        static_cast<const int64_t*>(lb.ptr));
           },
           "Adds a batch from contiguous buffers (numpy arrays), as the pipeline digests it")
      .def("hex", &BatchDigest::Hex);
}
