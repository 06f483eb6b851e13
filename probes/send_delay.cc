// SPDX-License-Identifier: GPL-2.0-or-later
#include "probes/send_delay.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace hanat::probes {

void SendDelay::add(std::chrono::microseconds delay) {
  ring_[next_] = std::max<std::int64_t>(0, delay.count());
  next_ = (next_ + 1) % kWindow;
  ++total_;
}

SendDelay::Summary SendDelay::summary() const {
  Summary s;
  s.samples = static_cast<std::size_t>(std::min<std::uint64_t>(total_, kWindow));
  if (s.samples == 0) return s;
  std::vector<std::int64_t> v(ring_.begin(),
                              ring_.begin() + static_cast<std::ptrdiff_t>(s.samples));
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  auto rank = [&](double p) {
    auto k = static_cast<std::size_t>(std::max(1.0, std::ceil(p * static_cast<double>(v.size()))));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k - 1), v.end());
    return std::chrono::microseconds(v[k - 1]);
  };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.max = std::chrono::microseconds(*std::max_element(v.begin(), v.end()));
  return s;
}

}  // namespace hanat::probes
