#include "converter/plot_svg.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/error.h"

namespace illm::converter {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};
constexpr int kMarkerShapes = 4;  // circle, square, triangle, diamond

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

// Coordinates with two decimals: enough for a screen, and stable text.
std::string num(double v) { return fmt::format("{:.2f}", v); }

std::string tick_label(double v) {
  if (v == 0) return "0";
  return fmt::format("{:.6g}", v);
}

// Axis ticks and the axis range they span.
struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};

// 1, 2 or 5 times a power of ten, at least `raw`.
double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 5.0}) {
    if (f * p >= raw * (1 - 1e-12)) return f * p;
  }
  return 10 * p;
}

Axis linear_axis(double lo, double hi) {
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double pad = std::max(std::fabs(hi) * 0.05, 1e-3);
    lo -= pad;
    hi += pad;
  }
  const double step = nice_step((hi - lo) / 5);
  Axis a;
  a.lo = std::floor(lo / step) * step;
  a.hi = std::ceil(hi / step) * step;
  for (double t = a.lo; t <= a.hi + step * 1e-9; t += step) a.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return a;
}

// Ticks at 1, 2, 5 × 10^k for spans up to two decades, at the decades beyond; the range is bracketed by ticks.
Axis log_axis(double lo, double hi) {
  const int k_lo = static_cast<int>(std::floor(std::log10(lo)));
  const int k_hi = static_cast<int>(std::ceil(std::log10(hi)));
  const bool fine = k_hi - k_lo <= 2;
  std::vector<double> candidates;
  for (int k = k_lo; k <= k_hi; ++k) {
    const double p = std::pow(10.0, k);
    if (fine) {
      for (double f : {1.0, 2.0, 5.0}) candidates.push_back(f * p);
    } else {
      candidates.push_back(p);
    }
  }
  Axis a;
  a.lo = candidates.front();
  a.hi = candidates.back();
  for (double c : candidates) {
    if (c <= lo * (1 + 1e-12)) a.lo = c;
  }
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    if (*it >= hi * (1 - 1e-12)) a.hi = *it;
  }
  if (a.hi <= a.lo) a.hi = a.lo * 10;
  for (double c : candidates) {
    if (c >= a.lo * (1 - 1e-12) && c <= a.hi * (1 + 1e-12)) a.ticks.push_back(c);
  }
  return a;
}

std::string marker(int shape, double x, double y, const char* color) {
  const double r = 4.0;
  switch (shape % kMarkerShapes) {
    case 0:
      return fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"/>", num(x), num(y), num(r), color);
    case 1:
      return fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>", num(x - r), num(y - r),
                         num(2 * r), num(2 * r), color);
    case 2:
      return fmt::format("<polygon points=\"{},{} {},{} {},{}\" fill=\"{}\"/>", num(x), num(y - r * 1.2),
                         num(x - r * 1.1), num(y + r * 0.8), num(x + r * 1.1), num(y + r * 0.8), color);
    default:
      return fmt::format("<polygon points=\"{},{} {},{} {},{} {},{}\" fill=\"{}\"/>", num(x), num(y - r * 1.3),
                         num(x + r), num(y), num(x), num(y + r * 1.3), num(x - r), num(y), color);
  }
}

}  // namespace

bool prefers_log_axis(const std::vector<double>& values, double ratio) {
  double lo = INFINITY, hi = 0;
  for (double v : values) {
    if (!(v > 0) || !std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return hi > 0 && hi / lo > ratio;
}

std::string render_line_plot_svg(const LinePlot& plot) {
  const size_t n_x = plot.x_categories.size();
  if (n_x == 0) throw Error("plot \"" + plot.title + "\": no x categories");
  std::vector<double> values;
  for (const auto& s : plot.series) {
    if (s.y.size() != n_x)
      throw Error(fmt::format("plot \"{}\": series \"{}\" has {} values for {} x categories", plot.title, s.name,
                              s.y.size(), n_x));
    for (const auto& v : s.y) {
      if (!v) continue;
      if (!std::isfinite(*v) || (plot.log_y && *v <= 0))
        throw Error(fmt::format("plot \"{}\": series \"{}\" has the value {}, which cannot be plotted{}", plot.title,
                                s.name, *v, plot.log_y ? " on a log axis" : ""));
      values.push_back(*v);
    }
  }
  if (plot.reference_y) {
    if (!std::isfinite(*plot.reference_y) || (plot.log_y && *plot.reference_y <= 0))
      throw Error(fmt::format("plot \"{}\": reference value {} cannot be plotted", plot.title, *plot.reference_y));
    values.push_back(*plot.reference_y);
  }
  if (values.empty()) throw Error("plot \"" + plot.title + "\": no values");
  const auto [min_it, max_it] = std::minmax_element(values.begin(), values.end());
  const Axis axis = plot.log_y ? log_axis(*min_it, *max_it) : linear_axis(*min_it, *max_it);

  // Layout: plot area left of a legend column.
  const double W = plot.width, H = plot.height;
  const double left = 78, right = W - 190, top = plot.subtitle.empty() ? 48 : 64, bottom = H - 58;
  auto x_of = [&](size_t i) { return n_x == 1 ? (left + right) / 2 : left + 30 + (right - left - 60) * i / (n_x - 1.0); };
  auto y_of = [&](double v) {
    const double f = plot.log_y ? (std::log10(v) - std::log10(axis.lo)) / (std::log10(axis.hi) - std::log10(axis.lo))
                                : (v - axis.lo) / (axis.hi - axis.lo);
    return bottom - f * (bottom - top);
  };

  std::string svg;
  svg += fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      plot.width, plot.height);
  svg += fmt::format("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
                     num(W / 2), xml_escape(plot.title));
  if (!plot.subtitle.empty())
    svg += fmt::format("<text x=\"{}\" y=\"42\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">{}</text>\n",
                       num(W / 2), xml_escape(plot.subtitle));

  // Grid, ticks and tick labels.
  svg += "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n";
  for (double t : axis.ticks)
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n", num(left), num(y_of(t)), num(right),
                       num(y_of(t)));
  svg += "</g>\n<g font-size=\"11\" fill=\"#222\">\n";
  for (double t : axis.ticks) {
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#222\"/>\n", num(left - 5),
                       num(y_of(t)), num(left), num(y_of(t)));
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", num(left - 8), num(y_of(t) + 4),
                       tick_label(t));
  }
  for (size_t i = 0; i < n_x; ++i) {
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#222\"/>\n", num(x_of(i)),
                       num(bottom), num(bottom + 5));
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num(x_of(i)), num(bottom + 18),
                       xml_escape(plot.x_categories[i]));
  }
  svg += "</g>\n";
  // Axes frame and labels.
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#222\"/>\n",
                     num(left), num(top), num(right - left), num(bottom - top));
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num((left + right) / 2),
                     num(H - 16), xml_escape(plot.x_label));
  svg += fmt::format("<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">{1}{2}</text>\n",
                     num((top + bottom) / 2), xml_escape(plot.y_label), plot.log_y ? " (log scale)" : "");

  // Reference line.
  if (plot.reference_y) {
    const double y = y_of(*plot.reference_y);
    svg += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"6 4\"/>\n",
        num(left), num(y), num(right), num(y));
  }

  // Series: polylines broken at missing values, then markers on top.
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const auto& series = plot.series[s];
    const char* color = kColors[s % std::size(kColors)];
    std::string points;
    auto flush = [&] {
      if (!points.empty())
        svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", points,
                           color);
      points.clear();
    };
    for (size_t i = 0; i < n_x; ++i) {
      if (!series.y[i]) {
        flush();
        continue;
      }
      if (!points.empty()) points += ' ';
      points += num(x_of(i));
      points += ',';
      points += num(y_of(*series.y[i]));
    }
    flush();
    for (size_t i = 0; i < n_x; ++i) {
      if (series.y[i]) svg += marker(static_cast<int>(s), x_of(i), y_of(*series.y[i]), color) + "\n";
    }
  }

  // Legend.
  double ly = top + 14;
  const double lx = right + 18;
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const char* color = kColors[s % std::size(kColors)];
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>\n", num(lx),
                       num(ly), num(lx + 28), num(ly), color);
    svg += marker(static_cast<int>(s), lx + 14, ly, color) + "\n";
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", num(lx + 36), num(ly + 4),
                       xml_escape(plot.series[s].name));
    ly += 20;
  }
  if (plot.reference_y) {
    svg += fmt::format(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"6 4\"/>\n",
        num(lx), num(ly), num(lx + 28), num(ly));
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", num(lx + 36), num(ly + 4),
                       xml_escape(plot.reference_label.empty() ? tick_label(*plot.reference_y) : plot.reference_label));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace illm::converter
