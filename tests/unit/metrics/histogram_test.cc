// SPDX-License-Identifier: GPL-2.0-or-later
// The histogram type: bucket edges (le is "less than or equal"), the +Inf bucket, sum and
// count, and its exposition as a scraper reads it (check_exposition).

#include "core/metrics/histogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/metrics/prometheus.h"

namespace hanat::metrics {
namespace {

using Counts = std::vector<std::uint64_t>;

TEST(Histogram, EmptyHasZeroEverywhereAndAnInfBucket) {
  Histogram h({0.1, 1});
  EXPECT_EQ(h.cumulative(), (Counts{0, 0, 0}));
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0);
}

TEST(Histogram, ValueOnAnEdgeCountsInThatEdgesBucket) {
  Histogram h({0.1, 0.5, 1});
  h.observe(0.1);  // le="0.1" includes 0.1
  EXPECT_EQ(h.cumulative(), (Counts{1, 1, 1, 1}));
  h.observe(0.10000001);  // just above: the next bucket
  EXPECT_EQ(h.cumulative(), (Counts{1, 2, 2, 2}));
  h.observe(1);
  EXPECT_EQ(h.cumulative(), (Counts{1, 2, 3, 3}));
}

TEST(Histogram, AboveTheLastBoundOnlyInInf) {
  Histogram h({0.1, 1});
  h.observe(1.5);
  h.observe(std::numeric_limits<double>::infinity());
  EXPECT_EQ(h.cumulative(), (Counts{0, 0, 2}));
  EXPECT_EQ(h.count(), 2u);
}

TEST(Histogram, BelowTheFirstBoundAndNegativeInEveryBucket) {
  Histogram h({0.1, 1});
  h.observe(0);
  h.observe(-3);
  EXPECT_EQ(h.cumulative(), (Counts{2, 2, 2}));
  EXPECT_DOUBLE_EQ(h.sum(), -3);
}

TEST(Histogram, NanIsIgnored) {
  Histogram h({1});
  h.observe(std::nan(""));
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0);
}

TEST(Histogram, SumAndCount) {
  Histogram h({0.25, 0.5});
  for (double v : {0.2, 0.3, 0.7}) h.observe(v);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 1.2);
  EXPECT_EQ(h.cumulative().back(), h.count());
}

TEST(Histogram, UnorderedBoundsAreAProgrammingError) {
  EXPECT_DEATH(Histogram({1, 0.5}), "histogram bounds not increasing");
  EXPECT_DEATH(Histogram({1, 1}), "histogram bounds not increasing");
  EXPECT_DEATH(Histogram({std::numeric_limits<double>::infinity()}), "histogram bound not finite");
}

TEST(HistogramExposition, GoldenDocumentPassesTheChecker) {
  Family f{"hanat_x_seconds", "X.", Type::Histogram, {}};
  Histogram a({0.5, 1});
  a.observe(0.5);
  a.observe(2);
  Histogram b({0.5, 1});
  append(f, {{"action", "ReplaceRoute"}}, a);
  append(f, {{"action", "Describe\"X"}}, b);
  auto doc = format({f, Family{"hanat_after", "", Type::Gauge, {{{}, 1}}}});
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(*doc,
            "# HELP hanat_x_seconds X.\n"
            "# TYPE hanat_x_seconds histogram\n"
            "hanat_x_seconds_bucket{action=\"ReplaceRoute\",le=\"0.5\"} 1\n"
            "hanat_x_seconds_bucket{action=\"ReplaceRoute\",le=\"1\"} 1\n"
            "hanat_x_seconds_bucket{action=\"ReplaceRoute\",le=\"+Inf\"} 2\n"
            "hanat_x_seconds_sum{action=\"ReplaceRoute\"} 2.5\n"
            "hanat_x_seconds_count{action=\"ReplaceRoute\"} 2\n"
            "hanat_x_seconds_bucket{action=\"Describe\\\"X\",le=\"0.5\"} 0\n"
            "hanat_x_seconds_bucket{action=\"Describe\\\"X\",le=\"1\"} 0\n"
            "hanat_x_seconds_bucket{action=\"Describe\\\"X\",le=\"+Inf\"} 0\n"
            "hanat_x_seconds_sum{action=\"Describe\\\"X\"} 0\n"
            "hanat_x_seconds_count{action=\"Describe\\\"X\"} 0\n"
            "# HELP hanat_after\n"
            "# TYPE hanat_after gauge\n"
            "hanat_after 1\n");
  auto n = check_exposition(*doc);
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(*n, 11u);
}

TEST(HistogramExposition, SuffixOutsideAHistogramIsRefused) {
  Family f{"hanat_g", "", Type::Gauge, {}};
  f.samples.push_back(Sample{{}, 1, "_bucket"});
  auto doc = format({f});
  ASSERT_FALSE(doc);
  EXPECT_EQ(doc.error(), "metric \"hanat_g\": sample suffix \"_bucket\" outside a histogram");
}

TEST(HistogramExposition, CheckerFindsHistogramMistakes) {
  auto err = [](std::string_view doc) {
    auto r = check_exposition(doc);
    return r ? std::string("accepted") : r.error();
  };
  EXPECT_EQ(err("# TYPE h histogram\nh_bucket 1\n"),
            "line 2: h_bucket: histogram bucket without an le label");
  EXPECT_EQ(err("# TYPE h histogram\nh_count 1\ny 1\nh_sum 2\n"),
            "line 4: h: samples not together");
  // Without a histogram TYPE, x_bucket is a family of its own: no le needed.
  EXPECT_EQ(err("x_bucket 1\n"), "accepted");
}

}  // namespace
}  // namespace hanat::metrics
