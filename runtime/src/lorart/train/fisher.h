// lorart fisher: the diagonal empirical Fisher information of a model's
// linear layers on reference data, which a plan compiled with --ewc-lambda
// reads (Session::BindFisher) to penalize moving the weights that matter
// for that data.
#ifndef LORART_TRAIN_FISHER_H_
#define LORART_TRAIN_FISHER_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "lorart/base/status.h"
#include "lorart/data/dataset.h"
#include "lorart/exec/session.h"

namespace lorart {

// The diagonal empirical Fisher of every linear layer's weight on a
// reference data set — the mean over micro-batches of the squared gradient
// of the batch's mean loss — from a plan that computes those gradients (full
// fine-tuning), written to `out_path` (safetensors, float32, one tensor per
// weight name) for a plan with --ewc-lambda.
Status EstimateFisher(Session* session, data::Dataset* dataset, int64_t max_batches,
                      const std::string& out_path, std::ostream* log);

}  // namespace lorart

#endif  // LORART_TRAIN_FISHER_H_
