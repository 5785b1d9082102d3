// The C API (runtime/include/lorart.h) over lorart::Session.
#include "lorart.h"

#include <memory>
#include <string>

#include "lorart/exec/feed.h"
#include "lorart/exec/session.h"
#include "lorart/io/peft_adapter.h"

struct lorart_session {
  std::unique_ptr<lorart::Session> session;
  mutable std::string device;  // lorart_device's text
};

namespace {

using lorart::InputPort;
using lorart::OutputPort;
namespace programs = lorart::programs;

thread_local std::string last_error;

int Fail(const lorart::Status& st) {
  last_error = st.message();
  return -1;
}

int Check(const lorart::Status& st) {
  if (!st.ok()) return Fail(st);
  last_error.clear();
  return 0;
}

lorart::Status Feed(lorart::Session& s, const char* program, const int32_t* tokens,
                    const int32_t* positions, const int32_t* segments, const int32_t* targets,
                    const uint8_t* mask) {
  const lorart::schema::Hyperparameters& d = s.plan().defaults();
  size_t n = static_cast<size_t>(d.micro_batch()) * d.seq_len();
  if (!tokens || !positions || !targets || !mask)
    return lorart::InvalidArgumentError("tokens, positions, targets and loss_mask are required");
  // A packed plan needs segment ids.
  if (!segments && lorart::HasInput(s.plan(), program, InputPort::SegmentIds))
    return lorart::InvalidArgumentError("this plan packs sequences: segment_ids is required");
  return lorart::FeedInputs(&s, program,
                            {{InputPort::Tokens, tokens, n * 4},
                             {InputPort::Positions, positions, n * 4},
                             {InputPort::SegmentIds, segments, n * 4, /*optional=*/true},
                             {InputPort::Targets, targets, n * 4},
                             {InputPort::LossMask, mask, n}});
}

lorart::Status Step(lorart::Session& s, const char* program, uint64_t seed, double* loss,
                    double* count) {
  LORA_RETURN_IF_ERROR(s.Run(program, seed));
  LORA_ASSIGN_OR_RETURN(double l, s.GetScalar(program, OutputPort::LossSum));
  LORA_ASSIGN_OR_RETURN(double c, s.GetScalar(program, OutputPort::Count));
  if (loss) *loss = l;
  if (count) *count = c;
  return lorart::OkStatus();
}

}  // namespace

extern "C" {

const char* lorart_last_error(void) { return last_error.c_str(); }

lorart_session* lorart_open(const char* plan_path, int num_threads) {
  return lorart_open_device(plan_path, num_threads, "cpu", nullptr);
}

lorart_session* lorart_open_device(const char* plan_path, int num_threads, const char* device,
                                   const char* kernel_cache) {
  if (!plan_path || !device) {
    last_error = "lorart_open: plan_path or device is NULL";
    return nullptr;
  }
  lorart::SessionOptions o;
  o.num_threads = num_threads;
  lorart::StatusOr<lorart::DeviceKind> kind = lorart::ParseDevice(device, &o.cuda_device);
  if (!kind.ok()) {
    Fail(kind.status());
    return nullptr;
  }
  o.device = *kind;
  if (kernel_cache) o.kernel_cache = kernel_cache;
  std::unique_ptr<lorart::Session> s;
  lorart::Status st = lorart::Session::Open(plan_path, o, &s);
  if (!st.ok()) {
    Fail(st);
    return nullptr;
  }
  last_error.clear();
  return new lorart_session{std::move(s), {}};
}

void lorart_close(lorart_session* session) { delete session; }

const char* lorart_device(const lorart_session* s) {
  if (!s) return "";
  s->device = s->session->DeviceDescription();
  return s->device.c_str();
}

int lorart_bind_weights(lorart_session* s, const char* model_dir, uint64_t seed) {
  if (!s || !model_dir) return Fail(lorart::InvalidArgumentError("lorart_bind_weights: NULL argument"));
  lorart::Status st = s->session->BindWeights(model_dir);
  if (!st.ok()) return Fail(st);
  return Check(s->session->InitTrainable(seed));
}

int lorart_load_adapter(lorart_session* s, const char* dir) {
  if (!s || !dir) return Fail(lorart::InvalidArgumentError("lorart_load_adapter: NULL argument"));
  return Check(lorart::LoadAdapter(s->session.get(), dir));
}

int lorart_save_adapter(const lorart_session* s, const char* dir, const char* base_model) {
  if (!s || !dir) return Fail(lorart::InvalidArgumentError("lorart_save_adapter: NULL argument"));
  return Check(lorart::SaveAdapter(*s->session, dir, base_model ? base_model : ""));
}

int64_t lorart_micro_batch(const lorart_session* s) {
  return s ? static_cast<int64_t>(s->session->plan().defaults().micro_batch()) : 0;
}
int64_t lorart_seq_len(const lorart_session* s) {
  return s ? static_cast<int64_t>(s->session->plan().defaults().seq_len()) : 0;
}

int lorart_train_step(lorart_session* s, const int32_t* tokens, const int32_t* positions,
                      const int32_t* segment_ids, const int32_t* targets, const uint8_t* loss_mask,
                      uint64_t step_seed, double* loss_sum, double* count) {
  if (!s) return Fail(lorart::InvalidArgumentError("lorart_train_step: NULL session"));
  lorart::Status st =
      Feed(*s->session, programs::kTrainStep, tokens, positions, segment_ids, targets, loss_mask);
  if (!st.ok()) return Fail(st);
  return Check(Step(*s->session, programs::kTrainStep, step_seed, loss_sum, count));
}

int lorart_eval_step(lorart_session* s, const int32_t* tokens, const int32_t* positions,
                     const int32_t* segment_ids, const int32_t* targets, const uint8_t* loss_mask,
                     double* loss_sum, double* count) {
  if (!s) return Fail(lorart::InvalidArgumentError("lorart_eval_step: NULL session"));
  lorart::Status st =
      Feed(*s->session, programs::kEvalStep, tokens, positions, segment_ids, targets, loss_mask);
  if (!st.ok()) return Fail(st);
  return Check(Step(*s->session, programs::kEvalStep, 0, loss_sum, count));
}

int lorart_optimizer_step(lorart_session* s, float lr, int64_t step, double token_count,
                          double* grad_norm) {
  if (!s) return Fail(lorart::InvalidArgumentError("lorart_optimizer_step: NULL session"));
  if (step < 1) return Fail(lorart::InvalidArgumentError("lorart_optimizer_step: step must be >= 1"));
  lorart::Session& x = *s->session;
  lorart::Status st = x.SetScalar(programs::kOptimizerStep, InputPort::LearningRate, lr);
  if (st.ok())
    st = x.SetScalar(programs::kOptimizerStep, InputPort::Step, static_cast<float>(step));
  if (st.ok())
    st = x.SetScalar(programs::kOptimizerStep, InputPort::TokenCount,
                     static_cast<float>(token_count));
  if (st.ok()) st = x.Run(programs::kOptimizerStep, 0);
  if (!st.ok()) return Fail(st);
  lorart::StatusOr<double> norm = x.GetScalar(programs::kOptimizerStep, OutputPort::GradNorm);
  if (!norm.ok()) return Fail(norm.status());
  if (grad_norm) *grad_norm = *norm;
  last_error.clear();
  return 0;
}

}  // extern "C"
