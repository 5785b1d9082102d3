#include "lorart/train/plot.h"

#include <algorithm>
#include <sstream>

namespace lorart {

std::string LossCurveSvg(const std::vector<std::pair<int64_t, double>>& train,
                         const std::vector<std::pair<int64_t, double>>& eval) {
  const double W = 640, H = 360, L = 60, R = 20, T = 20, B = 40;
  double xmax = 1, ymin = 1e300, ymax = -1e300;
  for (auto* curve : {&train, &eval})
    for (auto [x, y] : *curve) {
      xmax = std::max(xmax, static_cast<double>(x));
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  if (ymin > ymax) ymin = 0, ymax = 1;
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  auto px = [&](double x) { return L + (W - L - R) * x / xmax; };
  auto py = [&](double y) { return T + (H - T - B) * (1 - (y - ymin) / (ymax - ymin)); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B
    << "\" stroke=\"black\"/>\n<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L
    << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    double y = ymin + (ymax - ymin) * i / 4;
    s << "<text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">"
      << std::to_string(y).substr(0, 5) << "</text>\n";
  }
  s << "<text x=\"" << (W + L) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">step (max "
    << static_cast<int64_t>(xmax) << ")</text>\n";
  auto poly = [&](const std::vector<std::pair<int64_t, double>>& c, const char* color) {
    if (c.empty()) return;
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
    for (auto [x, y] : c) s << px(static_cast<double>(x)) << "," << py(y) << " ";
    s << "\"/>\n";
  };
  poly(train, "#1f77b4");
  poly(eval, "#d62728");
  s << "<text x=\"" << W - R - 150 << "\" y=\"" << T + 12 << "\" fill=\"#1f77b4\">train loss</text>\n";
  if (!eval.empty())
    s << "<text x=\"" << W - R - 150 << "\" y=\"" << T + 28 << "\" fill=\"#d62728\">eval loss</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace lorart
