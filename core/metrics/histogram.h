// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A Prometheus histogram: fixed upper bounds chosen at construction, a count per bucket,
// the sum and the count of observations. Exposed as the format requires (text format
// 0.0.4, "Histograms and summaries"): one `<name>_bucket{le="<bound>"}` sample per bound
// holding the *cumulative* count of observations <= bound, a final `le="+Inf"` bucket equal
// to `_count`, then `<name>_sum` and `<name>_count`. Pure and copyable: the daemon keeps
// them in its report like its counters.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics/prometheus.h"

namespace hanat::metrics {

class Histogram {
 public:
  // `bounds`: finite, strictly increasing upper bounds (the +Inf bucket is implicit).
  // HANAT_CHECKed: the bounds are constants in the code, never user input.
  explicit Histogram(std::vector<double> bounds);

  // Counts `v` in every bucket whose bound is >= v (le: "less than or equal"). NaN is
  // ignored: it belongs to no bucket and would poison the sum.
  void observe(double v);

  [[nodiscard]] const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts, one per bound, then the +Inf bucket (== count()).
  [[nodiscard]] std::vector<std::uint64_t> cumulative() const;
  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> per_bucket_;  // non-cumulative; the last is (bound_max, +Inf)
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// Appends `h` to the histogram family `f` (f.type must be Type::Histogram) as the samples of
// one series with `labels`: buckets (labels + le), _sum, _count.
void append(Family& f, const std::vector<std::pair<std::string, std::string>>& labels,
            const Histogram& h);

}  // namespace hanat::metrics
