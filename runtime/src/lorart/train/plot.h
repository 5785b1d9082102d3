// The loss curve the trainer writes beside its adapter (OUT/loss.svg).
#ifndef LORART_TRAIN_PLOT_H_
#define LORART_TRAIN_PLOT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lorart {

// An SVG line chart of training (and evaluation) loss per step.
std::string LossCurveSvg(const std::vector<std::pair<int64_t, double>>& train,
                         const std::vector<std::pair<int64_t, double>>& eval);

}  // namespace lorart

#endif  // LORART_TRAIN_PLOT_H_
