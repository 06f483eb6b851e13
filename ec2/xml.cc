// SPDX-License-Identifier: GPL-2.0-or-later
#include "ec2/xml.h"

#include <expat.h>

#include <memory>

namespace hanat::ec2 {
namespace {

// Documents nested deeper than this are refused rather than recursed into: EC2 replies are
// at most ~8 levels deep.
constexpr size_t kMaxDepth = 64;

struct Builder {
  XmlNode root;
  std::vector<XmlNode*> stack;
  bool have_root = false;
  bool too_deep = false;
  XML_Parser parser = nullptr;
};

void XMLCALL on_start(void* ud, const XML_Char* name, const XML_Char** /*attrs*/) {
  auto* b = static_cast<Builder*>(ud);
  if (b->stack.size() >= kMaxDepth) {
    b->too_deep = true;
    XML_StopParser(b->parser, XML_FALSE);
    return;
  }
  XmlNode* node = nullptr;
  if (b->stack.empty()) {
    b->have_root = true;
    node = &b->root;
  } else {
    XmlNode* parent = b->stack.back();
    parent->text.clear();  // mixed content: whitespace between elements is not text
    node = &parent->children.emplace_back();
  }
  node->name = name;
  b->stack.push_back(node);
}

void XMLCALL on_end(void* ud, const XML_Char* /*name*/) {
  auto* b = static_cast<Builder*>(ud);
  if (!b->stack.empty()) {
    if (!b->stack.back()->children.empty()) b->stack.back()->text.clear();
    b->stack.pop_back();
  }
}

void XMLCALL on_text(void* ud, const XML_Char* s, int len) {
  auto* b = static_cast<Builder*>(ud);
  if (b->stack.empty()) return;
  XmlNode* node = b->stack.back();
  if (!node->children.empty()) return;
  node->text.append(s, static_cast<size_t>(len));
}

const std::string kEmpty;

}  // namespace

const XmlNode* XmlNode::child(std::string_view n) const {
  for (const auto& c : children) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

const std::string& XmlNode::text_of(std::string_view n) const {
  const XmlNode* c = child(n);
  return c != nullptr ? c->text : kEmpty;
}

std::vector<const XmlNode*> XmlNode::items(std::string_view n) const {
  std::vector<const XmlNode*> out;
  const XmlNode* list = child(n);
  if (list == nullptr) return out;
  out.reserve(list->children.size());
  for (const auto& c : list->children) {
    if (c.name == "item") out.push_back(&c);
  }
  return out;
}

const XmlNode* XmlNode::find(std::string_view n) const {
  if (name == n) return this;
  for (const auto& c : children) {
    if (const XmlNode* f = c.find(n)) return f;
  }
  return nullptr;
}

core::Result<XmlNode, std::string> parse_xml(std::string_view doc) {
  std::unique_ptr<std::remove_pointer_t<XML_Parser>, decltype(&XML_ParserFree)> parser(
      XML_ParserCreate("UTF-8"), &XML_ParserFree);
  if (!parser) return core::Unexpected(std::string("cannot create XML parser"));
  Builder b;
  b.parser = parser.get();
  XML_SetUserData(parser.get(), &b);
  XML_SetElementHandler(parser.get(), on_start, on_end);
  XML_SetCharacterDataHandler(parser.get(), on_text);
  if (doc.size() > static_cast<size_t>(INT32_MAX)) {
    return core::Unexpected(std::string("XML document too large"));
  }
  const XML_Status st = XML_Parse(parser.get(), doc.data(), static_cast<int>(doc.size()), XML_TRUE);
  if (b.too_deep) {
    return core::Unexpected("XML nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  if (st != XML_STATUS_OK) {
    return core::Unexpected(std::string("invalid XML: ") +
                            XML_ErrorString(XML_GetErrorCode(parser.get())) + " at line " +
                            std::to_string(XML_GetCurrentLineNumber(parser.get())) + " column " +
                            std::to_string(XML_GetCurrentColumnNumber(parser.get())));
  }
  if (!b.have_root) return core::Unexpected(std::string("empty XML document"));
  return std::move(b.root);
}

}  // namespace hanat::ec2
