// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/histogram.h"

#include <algorithm>
#include <cmath>

#include "core/base/check.h"

namespace hanat::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), per_bucket_(bounds_.size() + 1, 0) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    HANAT_CHECK(std::isfinite(bounds_[i]), "histogram bound not finite");
    if (i > 0) HANAT_CHECK(bounds_[i - 1] < bounds_[i], "histogram bounds not increasing");
  }
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  // The first bound >= v: le means "less than or equal", so a value on an edge counts in
  // that edge's bucket.
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  ++per_bucket_[static_cast<size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += v;
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(per_bucket_.size());
  std::uint64_t run = 0;
  for (size_t i = 0; i < per_bucket_.size(); ++i) {
    run += per_bucket_[i];
    out[i] = run;
  }
  return out;
}

void append(Family& f, const std::vector<std::pair<std::string, std::string>>& labels,
            const Histogram& h) {
  HANAT_CHECK(f.type == Type::Histogram, "not a histogram family");
  const auto cum = h.cumulative();
  for (size_t i = 0; i < cum.size(); ++i) {
    Sample s;
    s.suffix = "_bucket";
    s.labels = labels;
    s.labels.emplace_back("le", i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf");
    s.value = static_cast<double>(cum[i]);
    f.samples.push_back(std::move(s));
  }
  f.samples.push_back(Sample{labels, h.sum(), "_sum"});
  f.samples.push_back(Sample{labels, static_cast<double>(h.count()), "_count"});
}

}  // namespace hanat::metrics
