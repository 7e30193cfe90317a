// The evaluation after each training epoch: the evaluation pipeline's options, and one pass of
// the model over that pipeline with the loss and accuracy reduced over the ranks.
//
// Threads: the thread that drives the trainer (Init opens the pipeline, Run() evaluates).

#include "autocast.h"
#include "flowfeed/util/clock.h"
#include "trainer_impl.h"

namespace flowfeed {

PipelineOptions EvalPipelineOptions(const PipelineOptions& options) {
  const TrainOptions& t = options.train;
  PipelineOptions e = options;
  e.source = t.eval.source;
  e.pipeline = t.eval.pipeline;
  e.shuffle = false;
  e.batch.size = t.eval.batch_size > 0 ? t.eval.batch_size : options.batch.size;
  e.batch.drop_last = false;
  e.prefetch = 1;
  e.max_in_flight = 0;
  e.cold = false;
  e.cache.mode = options.cache.mode == CacheMode::kOff ? CacheMode::kOff : CacheMode::kMemory;
  e.cache.path.clear();
  e.cache.after.clear();
  e.start_position = 0;  // evaluation runs whole, once per remaining epoch
  e.start_batch = 0;
  // Every evaluation sample exactly once over the ranks; the sums are reduced.
  e.distributed.uneven = UnevenPolicy::kAll;
  e.distributed.policy = ShardPolicy::kGlobal;
  return e;
}

Status TorchTrainer::Evaluate(TrainEpochStats* es) {
  torch::NoGradGuard no_grad;
  model_->eval();
  auto t0 = Clock::now();
  double loss_sum = 0;
  int64_t correct = 0, n = 0;
  bool abandoned = false;
  while (true) {
    BatchPtr b;
    FLOWFEED_RETURN_IF_ERROR(NextOrStop(eval_.get(), &b, &abandoned).WithContext("eval"));
    if (!b) break;
    torch::Tensor x, y, logits;
    Inputs(*b, /*slot=*/-1, &x, &y);
    if (eval_labels_.defined()) y = eval_labels_.index_select(0, y);  // to training labels
    {
      AutocastScope autocast(device_, options_.train.amp);
      logits = model_->forward(x);
    }
    // .item() waits for the device, so the batch (read by the copy) is released after it.
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, y,
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
    n += b->size;
  }
  if (comm_) {
    std::vector<double> v{loss_sum, double(correct), double(n)};
    FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "reduction of the evaluation metrics"));
    loss_sum = v[0];
    correct = int64_t(v[1]);
    n = int64_t(v[2]);
  }
  Span("evaluate", t0, Clock::now(), es->epoch);
  // A stop during evaluation abandons it (every rank still joins the reduction above once);
  // the metrics of a part of the evaluation set would mislead, so none are reported.
  if (abandoned || stop_requested_.load(std::memory_order_relaxed)) return Status::Ok();
  es->has_eval = true;
  es->eval_samples = n;
  es->eval_loss = n ? loss_sum / double(n) : 0;
  es->eval_accuracy = n ? double(correct) / double(n) : 0;
  es->eval_seconds = SecondsSince(t0);
  return Status::Ok();
}

}  // namespace flowfeed
