// Reading an HTML report page back in tests: its start tags and the data-* attributes the
// renderer puts on every chart element (flowfeed/report_html.h). Works on the page as written
// and on the DOM a browser serialises after loading it (--dump-dom).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace flowfeed::test {

// A config for an image folder of 24 small photos, 3 epochs, memory cache: epoch 1 decodes,
// epochs 2+ start from the cache. Written as dir/report.yaml; returns its path.
inline std::string WriteReportConfig(const TempDir& dir) {
  MakeImageFolder(dir / "photos", 2, 12);
  WriteText(dir / "report.yaml",
            "seed: 1\n"
            "threads: 2\n"
            "epochs: 3\n"
            "source: {type: image_folder, root: " + dir / "photos" + "}\n"
            "pipeline:\n"
            "  - {type: decode}\n"
            "  - {type: center_crop, size: 32}\n"
            "  - {type: random_horizontal_flip}\n"
            "  - {type: normalize, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
            "batch: {size: 8}\n"
            "cache: {mode: memory}\n");
  return dir / "report.yaml";
}

class ReportPage {
 public:
  struct Tag {
    std::string name;
    std::map<std::string, std::string> attrs;
    size_t pos = 0;  // of the '<'
    std::string Attr(const std::string& k) const {
      auto it = attrs.find(k);
      return it == attrs.end() ? "" : it->second;
    }
  };

  explicit ReportPage(std::string html) : html_(std::move(html)) { Parse(); }
  const std::string& html() const { return html_; }
  const std::vector<Tag>& tags() const { return tags_; }

  size_t Count(const std::string& s) const {
    size_t n = 0;
    for (size_t p = html_.find(s); p != std::string::npos; p = html_.find(s, p + 1)) ++n;
    return n;
  }

  // Bars of a bar chart (one <g class="stack"> each; a bar of a stacked chart has several
  // segments), optionally only those of one run.
  size_t Stacks(const std::string& chart) const { return StackRects(chart, -1, false).size(); }
  size_t StacksOfRun(const std::string& chart, int run) const {
    return StackRects(chart, run, false).size();
  }
  // Bars with at least one segment of positive height.
  size_t NonEmptyStacks(const std::string& chart) const {
    return StackRects(chart, -1, true).size();
  }

  // data-value of every bar segment of `series` in `chart`, in page order.
  std::vector<double> Values(const std::string& chart, const std::string& series) const {
    std::vector<double> out;
    for (const Tag* t : ChartRects(chart))
      if (t->Attr("data-series") == series) out.push_back(std::atof(t->Attr("data-value").c_str()));
    return out;
  }
  // Distinct series of a chart's bars, in page order.
  std::vector<std::string> Series(const std::string& chart) const {
    std::vector<std::string> out;
    for (const Tag* t : ChartRects(chart))
      if (std::find(out.begin(), out.end(), t->Attr("data-series")) == out.end())
        out.push_back(t->Attr("data-series"));
    return out;
  }
  // data-value of a line chart's points of one series.
  std::vector<double> Points(const std::string& chart, const std::string& series) const {
    std::vector<double> out;
    for (const Tag& t : tags_)
      if (t.name == "circle" && t.Attr("data-chart") == chart && t.Attr("data-series") == series)
        out.push_back(std::atof(t.Attr("data-value").c_str()));
    return out;
  }
  // The stage marked as taking the most time, per latency table.
  std::vector<std::string> SlowestStages() const {
    std::vector<std::string> out;
    for (const Tag& t : tags_)
      if (t.name == "tr" && t.Attr("class") == "slowest") out.push_back(t.Attr("data-stage"));
    return out;
  }
  // The fill colour of the tallest bar segment in a chart.
  std::string TallestFill(const std::string& chart) const {
    double best = -1;
    std::string fill;
    for (const Tag* t : ChartRects(chart)) {
      double h = std::atof(t->Attr("height").c_str());
      if (h > best) {
        best = h;
        fill = t->Attr("fill");
      }
    }
    return fill;
  }

  // No element or attribute that would fetch anything: scripts, frames, images, stylesheets,
  // media, src/href attributes, CSS url() or @import, a refresh.
  bool LoadsNothing(std::string* why = nullptr) const {
    static const char* const kFetching[] = {"script", "link",  "iframe", "frame", "img",
                                            "object", "embed", "video",  "audio", "source",
                                            "track",  "image", "use",    "base",  "form"};
    auto fail = [&](const std::string& w) {
      if (why) *why = w;
      return false;
    };
    for (const Tag& t : tags_) {
      for (const char* f : kFetching)
        if (t.name == f) return fail("element <" + t.name + ">");
      for (const auto& [k, v] : t.attrs) {
        if (k == "src" || k == "href" || k == "xlink:href" || k == "srcset" || k == "action" ||
            k == "poster" || k == "background" || k == "data")
          return fail("attribute " + k + " on <" + t.name + ">");
        if (Lower(v).find("url(") != std::string::npos) return fail("url() in " + k);
        if (k == "http-equiv" && Lower(v) == "refresh") return fail("meta refresh");
      }
    }
    // Inside <style>: CSS may fetch through url() and @import.
    for (const Tag& t : tags_) {
      if (t.name != "style") continue;
      size_t end = html_.find("</style>", t.pos);
      std::string css = Lower(html_.substr(t.pos, end - t.pos));
      if (css.find("url(") != std::string::npos || css.find("@import") != std::string::npos)
        return fail("url() or @import in <style>");
    }
    return true;
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  // Every start tag: "<" + a letter; text is escaped by the renderer, so a "<" in it never
  // reaches the page.
  void Parse() {
    const std::string& h = html_;
    for (size_t p = h.find('<'); p != std::string::npos; p = h.find('<', p + 1)) {
      if (p + 1 >= h.size() || !std::isalpha(static_cast<unsigned char>(h[p + 1]))) continue;
      Tag t;
      t.pos = p;
      size_t i = p + 1;
      while (i < h.size() && (std::isalnum(static_cast<unsigned char>(h[i])) || h[i] == '-' || h[i] == ':'))
        t.name += char(std::tolower(static_cast<unsigned char>(h[i++])));
      while (i < h.size() && h[i] != '>') {
        if (std::isspace(static_cast<unsigned char>(h[i])) || h[i] == '/') {
          ++i;
          continue;
        }
        std::string key;
        while (i < h.size() && !std::isspace(static_cast<unsigned char>(h[i])) && h[i] != '=' &&
               h[i] != '>' && h[i] != '/')
          key += char(std::tolower(static_cast<unsigned char>(h[i++])));
        std::string value;
        if (i < h.size() && h[i] == '=') {
          ++i;
          if (i < h.size() && (h[i] == '"' || h[i] == '\'')) {
            char q = h[i++];
            size_t e = h.find(q, i);
            if (e == std::string::npos) e = h.size();
            value = h.substr(i, e - i);
            i = e + 1;
          } else {
            while (i < h.size() && !std::isspace(static_cast<unsigned char>(h[i])) && h[i] != '>')
              value += h[i++];
          }
        }
        if (!key.empty()) t.attrs[key] = Unescape(value);
      }
      tags_.push_back(std::move(t));
    }
  }

  static std::string Unescape(const std::string& v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] != '&') {
        out += v[i];
        continue;
      }
      static const std::pair<const char*, char> kEntities[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''}};
      bool done = false;
      for (const auto& [e, c] : kEntities)
        if (v.compare(i, std::char_traits<char>::length(e), e) == 0) {
          out += c;
          i += std::char_traits<char>::length(e) - 1;
          done = true;
          break;
        }
      if (!done) out += v[i];
    }
    return out;
  }

  // Per bar (stack) of `chart`: its segments.
  std::vector<std::vector<const Tag*>> StackRects(const std::string& chart, int run,
                                                  bool non_empty) const {
    std::vector<std::vector<const Tag*>> out;
    for (size_t k = 0; k < tags_.size(); ++k) {
      const Tag& g = tags_[k];
      if (g.name != "g" || g.Attr("class") != "stack" || g.Attr("data-chart") != chart) continue;
      if (run >= 0 && g.Attr("data-run") != std::to_string(run)) continue;
      size_t end = html_.find("</g>", g.pos);
      std::vector<const Tag*> rects;
      bool any = false;
      for (size_t m = k + 1; m < tags_.size() && tags_[m].pos < end; ++m)
        if (tags_[m].name == "rect") {
          rects.push_back(&tags_[m]);
          any = any || std::atof(tags_[m].Attr("height").c_str()) > 0;
        }
      if (!non_empty || any) out.push_back(std::move(rects));
    }
    return out;
  }

  // Every bar segment of `chart`: inside its stacks, or carrying data-chart itself.
  std::vector<const Tag*> ChartRects(const std::string& chart) const {
    std::vector<const Tag*> out;
    for (auto& stack : StackRects(chart, -1, false))
      for (const Tag* t : stack) out.push_back(t);
    for (const Tag& t : tags_)
      if (t.name == "rect" && t.Attr("data-chart") == chart) out.push_back(&t);
    return out;
  }

  std::string html_;
  std::vector<Tag> tags_;
};

}  // namespace flowfeed::test
