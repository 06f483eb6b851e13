// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once
// A small read-only XML tree built with expat, enough for EC2 Query API replies: element
// names (EC2 uses one default namespace, so names are local), text of leaf elements, and
// children in document order. Attributes are ignored (EC2 replies carry none we need).

#include <string>
#include <string_view>
#include <vector>

#include "core/base/result.h"

namespace hanat::ec2 {

struct XmlNode {
  std::string name;
  std::string text;  // character data of a leaf element; empty for elements with children
  std::vector<XmlNode> children;

  // First child named `n`, or nullptr.
  [[nodiscard]] const XmlNode* child(std::string_view n) const;
  // Text of the first child named `n`, or "" when absent.
  [[nodiscard]] const std::string& text_of(std::string_view n) const;
  // The <item> children of the child named `n` (EC2's list shape); empty when absent.
  [[nodiscard]] std::vector<const XmlNode*> items(std::string_view n) const;
  // First descendant (depth-first, including this node) named `n`, or nullptr.
  [[nodiscard]] const XmlNode* find(std::string_view n) const;
};

// Parses a whole document. The error names expat's reason and the line/column.
[[nodiscard]] core::Result<XmlNode, std::string> parse_xml(std::string_view doc);

}  // namespace hanat::ec2
