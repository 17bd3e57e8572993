// examples/transformer/report.hpp — what a run prints and saves: a progress bar on stderr (only
// when stderr is a terminal), CSV loss logs, one SVG plot of loss curves (our own writer), a text
// table, and the peak resident memory.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hyplora/io/atomic_file.hpp"

namespace hyplora::examples {

/// Peak resident set size of this process in MiB (VmHWM of /proc/self/status), or -1 if unknown.
inline double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return -1.0;
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to /proc/self/clear_refs), so each run in one
/// process reports its own peak. Returns false where that is not supported.
inline bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f.flush());
}

/// "step 120/300 loss 2.3141 12.3k tok/s ETA 0:14" redrawn in place on stderr when it is a tty.
class ProgressBar {
 public:
  ProgressBar(std::string label, long total) : label_(std::move(label)), total_(total), on_(isatty(2) != 0) {}
  void update(long step, double loss, double tokens_per_s) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (step < total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 24, fill = total_ > 0 ? static_cast<int>(width * step / total_) : width;
    const double sec = std::chrono::duration<double>(now - start_).count();
    const double eta = step > 0 ? sec * static_cast<double>(total_ - step) / static_cast<double>(step) : 0.0;
    std::fprintf(stderr, "\r%-22s [%s%s] %ld/%ld loss %.4f %.1fk tok/s ETA %d:%02d ", label_.c_str(),
                 std::string(static_cast<std::size_t>(fill), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - fill), '.').c_str(), step, total_, loss,
                 tokens_per_s / 1000.0, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
    if (step >= total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  long total_;
  bool on_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

/// One named loss curve: (step, loss) pairs.
struct Curve {
  std::string name;
  std::vector<double> steps, loss;
};

/// "step,loss" CSV of one curve, written atomically.
inline void write_csv(const std::filesystem::path& path, const Curve& c) {
  std::ostringstream s;
  s << "step,loss\n";
  for (std::size_t i = 0; i < c.steps.size(); ++i) s << c.steps[i] << ',' << c.loss[i] << '\n';
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  io::write_file_atomic(path, std::string_view(s.str()));
}

/// An SVG line plot: one polyline per curve, axes with tick labels, and a legend.
inline std::string svg_plot(const std::vector<Curve>& curves, const std::string& title) {
  const double W = 720, H = 440, l = 64, r = 170, t = 40, b = 50;
  double x0 = 0, x1 = 1, y0 = 1e300, y1 = -1e300;
  for (const Curve& c : curves)
    for (std::size_t i = 0; i < c.steps.size(); ++i) {
      if (!std::isfinite(c.loss[i])) continue;
      x1 = std::max(x1, c.steps[i]);
      y0 = std::min(y0, c.loss[i]);
      y1 = std::max(y1, c.loss[i]);
    }
  if (!(y0 <= y1)) y0 = 0, y1 = 1;
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const auto X = [&](double x) { return l + (W - l - r) * (x - x0) / (x1 - x0); };
  const auto Y = [&](double y) { return H - b - (H - t - b) * (y - y0) / (y1 - y0); };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n"
    << "<line x1=\"" << l << "\" y1=\"" << H - b << "\" x2=\"" << W - r << "\" y2=\"" << H - b << "\" stroke=\"black\"/>\n"
    << "<line x1=\"" << l << "\" y1=\"" << t << "\" x2=\"" << l << "\" y2=\"" << H - b << "\" stroke=\"black\"/>\n";
  for (int k = 0; k <= 5; ++k) {
    const double xv = x0 + (x1 - x0) * k / 5, yv = y0 + (y1 - y0) * k / 5;
    s << "<text x=\"" << X(xv) << "\" y=\"" << H - b + 18 << "\" text-anchor=\"middle\">" << std::lround(xv) << "</text>\n";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", yv);
    s << "<text x=\"" << l - 6 << "\" y=\"" << Y(yv) + 4 << "\" text-anchor=\"end\">" << buf << "</text>\n"
      << "<line x1=\"" << l << "\" y1=\"" << Y(yv) << "\" x2=\"" << W - r << "\" y2=\"" << Y(yv)
      << "\" stroke=\"#ddd\"/>\n";
  }
  s << "<text x=\"" << (l + W - r) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n"
    << "<text x=\"16\" y=\"" << (t + H - b) / 2 << "\" transform=\"rotate(-90 16 " << (t + H - b) / 2
    << ")\" text-anchor=\"middle\">train loss</text>\n";
  for (std::size_t ci = 0; ci < curves.size(); ++ci) {
    const Curve& c = curves[ci];
    const char* col = colors[ci % 8];
    s << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.5\" points=\"";
    for (std::size_t i = 0; i < c.steps.size(); ++i)
      if (std::isfinite(c.loss[i])) s << X(c.steps[i]) << ',' << Y(c.loss[i]) << ' ';
    s << "\"/>\n";
    const double ly = t + 10 + 20.0 * static_cast<double>(ci);
    s << "<line x1=\"" << W - r + 12 << "\" y1=\"" << ly << "\" x2=\"" << W - r + 36 << "\" y2=\"" << ly
      << "\" stroke=\"" << col << "\" stroke-width=\"3\"/>\n<text x=\"" << W - r + 42 << "\" y=\"" << ly + 4 << "\">"
      << c.name << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

/// A plain text table with right-aligned columns after the first.
inline std::string text_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(head.size());
  for (std::size_t j = 0; j < head.size(); ++j) w[j] = head[j].size();
  for (const auto& r : rows)
    for (std::size_t j = 0; j < r.size() && j < w.size(); ++j) w[j] = std::max(w[j], r[j].size());
  std::ostringstream s;
  const auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t j = 0; j < w.size(); ++j) {
      const std::string c = j < r.size() ? r[j] : "";
      const std::string pad(w[j] - c.size(), ' ');
      s << (j ? "  " : "") << (j ? pad + c : c + pad);
    }
    s << '\n';
  };
  line(head);
  std::size_t total = 0;
  for (std::size_t x : w) total += x + 2;
  s << std::string(total - 2, '-') << '\n';
  for (const auto& r : rows) line(r);
  return s.str();
}

}  // namespace hyplora::examples
