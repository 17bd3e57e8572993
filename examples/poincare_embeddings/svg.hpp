// examples/poincare_embeddings/svg.hpp — a minimal SVG writer (our own) and an x–y plot helper,
// shared by the poincare_embeddings and embedding_geometry examples.
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hyplora/core/errors.hpp"

namespace hyplora {
namespace examples {
namespace emb {

inline std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

class Svg {
 public:
  Svg(double width, double height) : w_(width), h_(height) {}
  void circle(double cx, double cy, double r, const std::string& fill, const std::string& stroke,
              double stroke_width = 1.0) {
    body_ << "<circle cx=\"" << cx << "\" cy=\"" << cy << "\" r=\"" << r << "\" fill=\"" << fill
          << "\" stroke=\"" << stroke << "\" stroke-width=\"" << stroke_width << "\"/>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1.0,
            double opacity = 1.0) {
    body_ << "<line x1=\"" << x1 << "\" y1=\"" << y1 << "\" x2=\"" << x2 << "\" y2=\"" << y2
          << "\" stroke=\"" << stroke << "\" stroke-width=\"" << width << "\" stroke-opacity=\""
          << opacity << "\"/>\n";
  }
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                double width = 1.5) {
    body_ << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"" << width << "\" points=\"";
    for (std::size_t i = 0; i < xs.size() && i < ys.size(); ++i) body_ << xs[i] << ',' << ys[i] << ' ';
    body_ << "\"/>\n";
  }
  void text(double x, double y, const std::string& s, double size = 10.0,
            const std::string& anchor = "start") {
    body_ << "<text x=\"" << x << "\" y=\"" << y << "\" font-size=\"" << size
          << "\" font-family=\"sans-serif\" text-anchor=\"" << anchor << "\">" << xml_escape(s)
          << "</text>\n";
  }
  std::string str() const {
    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w_ << "\" height=\"" << h_
      << "\" viewBox=\"0 0 " << w_ << ' ' << h_ << "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << body_.str() << "</svg>\n";
    return o.str();
  }
  void save(const std::string& path) const {
    std::ofstream f(path);
    if (!f) throw io_error("cannot write " + path);
    f << str();
    if (!f) throw io_error("error writing " + path);
  }

 private:
  double w_, h_;
  std::ostringstream body_;
};

/// A scatter (dots) or line plot of (x, y) with optional log axes, axis labels and tick values
/// at the ends. Non-finite points (and non-positive ones on a log axis) are skipped.
inline Svg xy_plot(const std::vector<double>& x, const std::vector<double>& y, bool logx, bool logy,
                   const std::string& title, const std::string& xlabel, const std::string& ylabel,
                   bool as_line = false) {
  const double W = 520, H = 400, L = 70, Rm = 20, T = 40, B = 50;
  std::vector<double> px, py;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    if ((logx && x[i] <= 0) || (logy && y[i] <= 0)) continue;
    px.push_back(logx ? std::log10(x[i]) : x[i]);
    py.push_back(logy ? std::log10(y[i]) : y[i]);
  }
  Svg s(W, H);
  s.text(W / 2, 22, title, 14, "middle");
  s.line(L, H - B, W - Rm, H - B, "#000");
  s.line(L, T, L, H - B, "#000");
  s.text((L + W - Rm) / 2, H - 12, xlabel + (logx ? " (log10)" : ""), 11, "middle");
  s.text(14, T - 8, ylabel + (logy ? " (log10)" : ""), 11, "start");
  if (px.empty()) return s;
  double x0 = *std::min_element(px.begin(), px.end()), x1 = *std::max_element(px.begin(), px.end());
  double y0 = *std::min_element(py.begin(), py.end()), y1 = *std::max_element(py.begin(), py.end());
  if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
  const auto sx = [&](double v) { return L + (v - x0) / (x1 - x0) * (W - L - Rm); };
  const auto sy = [&](double v) { return H - B - (v - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream t;
  t.precision(3);
  t << x0; s.text(L, H - B + 14, t.str(), 9, "middle"); t.str("");
  t << x1; s.text(W - Rm, H - B + 14, t.str(), 9, "middle"); t.str("");
  t << y0; s.text(L - 4, H - B, t.str(), 9, "end"); t.str("");
  t << y1; s.text(L - 4, T + 4, t.str(), 9, "end");
  if (as_line) {
    std::vector<double> qx, qy;
    for (std::size_t i = 0; i < px.size(); ++i) { qx.push_back(sx(px[i])); qy.push_back(sy(py[i])); }
    s.polyline(qx, qy, "#1f77b4");
  } else {
    for (std::size_t i = 0; i < px.size(); ++i) s.circle(sx(px[i]), sy(py[i]), 2.0, "#1f77b4", "none", 0);
  }
  return s;
}

}  // namespace emb
}  // namespace examples
}  // namespace hyplora
