#pragma once
// A small self-contained SVG line-plot writer (no gnuplot needed): categorical x axis, linear or log10 y axis
// with ticks and labels, a title, one polyline with markers per series, a legend, and an optional dashed
// horizontal reference line (e.g. the FP perplexity). Used by `illm sweep` for perplexity vs clip constant.
#include <optional>
#include <string>
#include <vector>

namespace illm::converter {

struct PlotSeries {
  std::string name;
  std::vector<std::optional<double>> y;  // one value per x category; nullopt = no point (the line breaks there)
};

struct LinePlot {
  std::string title;
  std::string subtitle;  // second, smaller title line (may be empty)
  std::string x_label, y_label;
  std::vector<std::string> x_categories;  // evenly spaced, in this order
  std::vector<PlotSeries> series;
  std::optional<double> reference_y;  // dashed horizontal line
  std::string reference_label;
  bool log_y = false;  // log10 axis; every plotted value must then be > 0
  int width = 760, height = 460;
};

// The SVG document (UTF-8 text). Deterministic: the same plot gives the same bytes. Throws illm::Error when
// there is nothing to plot, a series has the wrong number of values, or a value is not finite (or ≤ 0 on a
// log axis).
std::string render_line_plot_svg(const LinePlot& plot);

// True when the positive values span enough orders of magnitude that a log axis reads better (max/min > ratio).
bool prefers_log_axis(const std::vector<double>& values, double ratio = 8.0);

}  // namespace illm::converter
