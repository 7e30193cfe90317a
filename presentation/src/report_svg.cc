// The page's text formatting and inline SVG charts.

#include "report_svg.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>

namespace flowfeed {
namespace html {

// ---------------------------------------------------------------------------------------------
// Text.

std::string Esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Three significant digits, never in exponent form.
std::string Sig(double v) {
  double a = std::fabs(v);
  if (a >= 100) return Fmt("%.0f", v);
  if (a >= 10) return Fmt("%.1f", v);
  if (a >= 1) return Fmt("%.2f", v);
  if (a >= 0.1) return Fmt("%.3f", v);
  if (a == 0) return "0";
  return Fmt("%.4f", v);
}

std::string Secs(double s) {
  if (std::fabs(s) < 1 && s != 0) return Sig(s * 1000) + " ms";
  return Sig(s) + " s";
}

std::string Pct(double share) { return Fmt(share >= 0.1 || share == 0 ? "%.0f%%" : "%.1f%%", 100 * share); }

// SVG coordinates: one decimal is finer than a pixel.
std::string C(double v) { return Fmt("%.1f", v); }

// ---------------------------------------------------------------------------------------------


std::string RunColor(size_t run) { return kRunPalette[run % (sizeof kRunPalette / sizeof *kRunPalette)]; }

// ---------------------------------------------------------------------------------------------
// Charts.

namespace {

double NiceStep(double span, int ticks) {
  double raw = span / ticks;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / p;
  double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * p;
}

constexpr double kW = 880, kH = 270, kLeft = 64, kRight = 14, kTop = 16, kBottom = 46;

std::string SvgOpen(const std::string& id, double h, const std::string& label) {
  return "<svg class=\"chart\" id=\"" + Esc(id) + "\" data-chart=\"" + Esc(id) +
         "\" viewBox=\"0 0 " + C(kW) + " " + C(h) + "\" role=\"img\" aria-label=\"" + Esc(label) +
         "\">\n";
}

std::string Text(double x, double y, const std::string& s, const std::string& anchor,
                 const std::string& cls) {
  return "<text x=\"" + C(x) + "\" y=\"" + C(y) + "\" text-anchor=\"" + anchor + "\"" +
         (cls.empty() ? "" : " class=\"" + cls + "\"") + ">" + Esc(s) + "</text>";
}

}  // namespace

// Vertical bars, stacked within a bar, bars of one group side by side. `fixed_max` > 0 pins the
// axis (percentages).
std::string BarChart(const std::string& id, const std::string& label,
                     const std::vector<Group>& groups,
                     const std::function<std::string(double)>& fmt, double fixed_max) {
  double max = 0;
  for (const Group& g : groups)
    for (const Stack& s : g.stacks) {
      double t = 0;
      for (const Seg& seg : s.segs) t += std::max(0.0, seg.value);
      max = std::max(max, t);
    }
  if (fixed_max > 0) max = fixed_max;
  if (!(max > 0)) max = 1;
  const double step = NiceStep(max, 5);
  const double top = std::ceil(max / step - 1e-9) * step;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom, base = kTop + ph;
  std::ostringstream o;
  o << SvgOpen(id, kH, label);
  for (double v = 0; v <= top + step / 2; v += step) {
    double y = base - v / top * ph;
    o << "<line class=\"grid\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
      << C(y) << "\" y2=\"" << C(y) << "\"/>" << Text(kLeft - 6, y + 4, fmt(v), "end", "axis")
      << "\n";
  }
  const double gw = pw / double(std::max<size_t>(groups.size(), 1));
  // Label every group while they fit, else every k-th (long training runs).
  const size_t label_every = std::max<size_t>(1, size_t(std::ceil(38.0 / gw)));
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const Group& g = groups[gi];
    const size_t n = std::max<size_t>(g.stacks.size(), 1);
    const double gap = n > 1 ? std::min(6.0, gw * 0.04) : 0;
    const double bw = std::max(1.0, std::min(46.0, (gw * 0.8 - gap * double(n - 1)) / double(n)));
    double x = kLeft + double(gi) * gw + (gw - bw * double(n) - gap * double(n - 1)) / 2;
    for (const Stack& s : g.stacks) {
      o << "<g class=\"stack\" data-chart=\"" << Esc(id) << "\" data-run=\"" << s.run
        << "\" data-epoch=\"" << s.epoch << "\">";
      double y = base, total = 0;
      for (const Seg& seg : s.segs) {
        double h = std::max(0.0, seg.value) / top * ph;
        total += std::max(0.0, seg.value);
        if (h <= 0) continue;
        y -= h;
        o << "<rect class=\"bar\" data-series=\"" << Esc(seg.series) << "\" data-value=\""
          << Fmt("%.6g", seg.value) << "\" x=\"" << C(x) << "\" y=\"" << C(y) << "\" width=\""
          << C(bw) << "\" height=\"" << C(h) << "\" fill=\"" << seg.color << "\"><title>"
          << Esc(seg.tip) << "</title></rect>";
      }
      if (bw >= 16 && total > 0)
        o << Text(x + bw / 2, y - 4, fmt(total), "middle", "value");
      if (g.stacks.size() > 1 && bw >= 9 && !s.tag.empty())
        o << Text(x + bw / 2, base + 12, s.tag, "middle", "tag");
      o << "</g>\n";
      x += bw + gap;
    }
    if (gi % label_every == 0)
      o << Text(kLeft + (double(gi) + 0.5) * gw, base + (g.stacks.size() > 1 ? 26 : 16),
                g.label, "middle", "axis")
        << "\n";
  }
  o << "<line class=\"axisline\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
    << C(base) << "\" y2=\"" << C(base) << "\"/>\n</svg>\n";
  return o.str();
}


std::string HBarChart(const std::string& id, const std::string& label,
                      const std::vector<HRow>& rows, size_t runs,
                      const std::vector<std::string>& run_labels) {
  const double left = 230, right = 80, row_h = 16.0 * double(std::max<size_t>(runs, 1)) + 10;
  const double h = kTop + row_h * double(rows.size()) + 24;
  double lo = 0, hi = 0;
  for (const HRow& r : rows)
    for (const auto& [run, v] : r.values) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (hi - lo <= 0) hi = 1;
  const double pw = kW - left - right;
  auto X = [&](double v) { return left + (v - lo) / (hi - lo) * pw; };
  std::ostringstream o;
  o << SvgOpen(id, h, label);
  const double step = NiceStep(hi - lo, 5);
  for (double v = std::ceil(lo / step) * step; v <= hi + step / 100; v += step) {
    o << "<line class=\"grid\" x1=\"" << C(X(v)) << "\" x2=\"" << C(X(v)) << "\" y1=\"" << C(kTop)
      << "\" y2=\"" << C(h - 22) << "\"/>" << Text(X(v), h - 8, Secs(v), "middle", "axis") << "\n";
  }
  double y = kTop;
  for (const HRow& r : rows) {
    o << Text(left - 8, y + row_h / 2 + 2, r.label, "end", "axis") << "\n";
    double by = y + 5;
    for (const auto& [run, v] : r.values) {
      double x0 = X(std::min(0.0, v)), x1 = X(std::max(0.0, v));
      std::string tip = (runs > 1 ? run_labels[run] + ": " : "") + r.label + ": " + Secs(v);
      o << "<rect class=\"bar\" data-chart=\"" << Esc(id) << "\" data-run=\"" << run
        << "\" data-series=\"" << Esc(r.label) << "\" data-value=\"" << Fmt("%.6g", v)
        << "\" x=\"" << C(x0) << "\" y=\"" << C(by) << "\" width=\"" << C(std::max(1.0, x1 - x0))
        << "\" height=\"12\" fill=\"" << RunColor(run) << "\"><title>" << Esc(tip)
        << "</title></rect>" << Text(x1 + 4, by + 10, Secs(v), "start", "value") << "\n";
      by += 16;
    }
    y += row_h;
  }
  o << "<line class=\"axisline\" x1=\"" << C(X(0)) << "\" x2=\"" << C(X(0)) << "\" y1=\""
    << C(kTop) << "\" y2=\"" << C(h - 22) << "\"/>\n</svg>\n";
  return o.str();
}


std::string LineChart(const std::string& id, const std::string& label,
                      const std::vector<Series>& series,
                      const std::function<std::string(double)>& fmt,
                      const std::vector<std::string>& run_labels) {
  int e_lo = INT32_MAX, e_hi = INT32_MIN;
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series)
    for (const auto& [e, v] : s.points) {
      e_lo = std::min(e_lo, e);
      e_hi = std::max(e_hi, e);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (e_lo > e_hi) return "";
  if (hi - lo <= 0) {
    lo -= std::max(std::fabs(lo) * 0.1, 1e-3);
    hi += std::max(std::fabs(hi) * 0.1, 1e-3);
  }
  const double step = NiceStep(hi - lo, 5);
  lo = std::floor(lo / step) * step;
  hi = std::ceil(hi / step) * step;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom, base = kTop + ph;
  // Inset so the first and last epochs' labels stay inside the chart.
  const double inset = 28;
  auto X = [&](int e) {
    return e_hi == e_lo ? kLeft + pw / 2
                        : kLeft + inset + double(e - e_lo) / double(e_hi - e_lo) * (pw - 2 * inset);
  };
  auto Y = [&](double v) { return base - (v - lo) / (hi - lo) * ph; };
  std::ostringstream o;
  o << SvgOpen(id, kH, label);
  for (double v = lo; v <= hi + step / 2; v += step)
    o << "<line class=\"grid\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
      << C(Y(v)) << "\" y2=\"" << C(Y(v)) << "\"/>" << Text(kLeft - 6, Y(v) + 4, fmt(v), "end", "axis")
      << "\n";
  const int e_step = std::max(1, (e_hi - e_lo + 1) / 20);
  for (int e = e_lo; e <= e_hi; e += e_step)
    o << Text(X(e), base + 16, "epoch " + std::to_string(e), "middle", "axis");
  o << "\n";
  for (const Series& s : series) {
    if (s.points.empty()) continue;
    std::string pts;
    for (const auto& [e, v] : s.points) pts += C(X(e)) + "," + C(Y(v)) + " ";
    o << "<polyline class=\"line\" data-chart=\"" << Esc(id) << "\" data-run=\"" << s.run
      << "\" data-series=\"" << Esc(s.name) << "\" points=\"" << pts << "\" stroke=\""
      << RunColor(s.run) << "\"" << (s.dashed ? " stroke-dasharray=\"6 4\"" : "") << "/>\n";
    for (const auto& [e, v] : s.points)
      o << "<circle class=\"point\" data-chart=\"" << Esc(id) << "\" data-run=\"" << s.run
        << "\" data-series=\"" << Esc(s.name) << "\" data-epoch=\"" << e << "\" data-value=\""
        << Fmt("%.6g", v) << "\" cx=\"" << C(X(e)) << "\" cy=\"" << C(Y(v)) << "\" r=\"3.5\" fill=\""
        << RunColor(s.run) << "\"><title>"
        << Esc((run_labels.size() > 1 ? run_labels[s.run] + ", " : "") + s.name + ", epoch " +
               std::to_string(e) + ": " + fmt(v))
        << "</title></circle>";
    o << "\n";
  }
  o << "<line class=\"axisline\" x1=\"" << C(kLeft) << "\" x2=\"" << C(kW - kRight) << "\" y1=\""
    << C(base) << "\" y2=\"" << C(base) << "\"/>\n</svg>\n";
  return o.str();
}

std::string Legend(const std::vector<std::pair<std::string, std::string>>& items,
                   bool dashed_second) {
  std::string out = "<div class=\"legend\">";
  for (size_t i = 0; i < items.size(); ++i)
    out += "<span class=\"key\"><span class=\"sw" +
           std::string(dashed_second && i % 2 == 1 ? " dashed" : "") + "\" style=\"" +
           (dashed_second && i % 2 == 1 ? "border-color:" : "background:") + items[i].second +
           "\"></span>" + Esc(items[i].first) + "</span>";
  return out + "</div>\n";
}

std::string Figure(const std::string& title, const std::string& body, const std::string& caption) {
  return "<figure><figcaption><b>" + Esc(title) + "</b>" +
         (caption.empty() ? "" : " <span class=\"note\">" + caption + "</span>") +
         "</figcaption>\n" + body + "</figure>\n";
}

}  // namespace html
}  // namespace flowfeed
