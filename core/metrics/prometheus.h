// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// DOC: metrics for node_exporter. hanatd does not serve HTTP; it writes its metrics to a
// file that node_exporter's textfile collector reads (Debian's prometheus-node-exporter
// reads /var/lib/prometheus/node-exporter/*.prom). This header is the pure part: metric
// families rendered in the Prometheus text exposition format 0.0.4 — one HELP and one TYPE
// line per family, then one line per sample — with names validated and label values
// escaped as the format requires (backslash, double quote, line feed).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.h"

namespace hanat::metrics {

enum class Type { Gauge, Counter, Histogram };

struct Sample {
  using Labels = std::vector<std::pair<std::string, std::string>>;
  Sample() = default;
  // Not an aggregate, so that `{labels, value}` leaves the suffix empty without a warning.
  Sample(Labels l, double v, std::string sfx = {})
      : labels(std::move(l)), value(v), suffix(std::move(sfx)) {}
  Labels labels;  // name -> value, in order
  double value = 0;
  // Appended to the family name: "_bucket", "_sum" or "_count" in a histogram family
  // (histogram.h writes them), empty otherwise.
  std::string suffix;
};

struct Family {
  std::string name;  // [a-zA-Z_:][a-zA-Z0-9_:]*
  std::string help;
  Type type = Type::Gauge;
  std::vector<Sample> samples;
};

// Label value escaping: \ -> \\, " -> \", line feed -> \n.
[[nodiscard]] std::string escape_label_value(std::string_view v);
// HELP text escaping: \ -> \\, line feed -> \n (quotes stay as they are).
[[nodiscard]] std::string escape_help(std::string_view v);
// A sample value: integers without a fraction, otherwise the shortest round-trip form;
// NaN, +Inf and -Inf as the format spells them.
[[nodiscard]] std::string format_value(double v);

[[nodiscard]] bool valid_metric_name(std::string_view name);
[[nodiscard]] bool valid_label_name(std::string_view name);

// The whole document, or an error naming the family (and label) that is invalid: a bad
// metric or label name, a label name starting with "__" (reserved), a duplicate family
// or a duplicate label within one sample. Nothing is written for invalid input.
[[nodiscard]] core::Result<std::string, std::string> format(const std::vector<Family>& families);

// Checks a document against the text format 0.0.4, as a scraper reads it (what promtool's
// "check metrics" does for syntax): every line a HELP, TYPE or other comment, or a sample
// `name{label="value",...} value [timestamp]` with valid names, escapes and value; one
// TYPE per family, before its samples; a family's samples together (a histogram's
// `_bucket`, `_sum` and `_count` samples belong to its family, and each bucket has an `le`
// label); the document ends with a line feed. Returns the number of samples, or "line N: what is
// wrong".
[[nodiscard]] core::Result<size_t, std::string> check_exposition(std::string_view text);

}  // namespace hanat::metrics
