#include "formats/onnx/graph_builder.h"

#include <cstring>

#include <fmt/format.h>

#include "kernels/error.h"

namespace illm::formats::onnx_export {

void set_tensor_type(onnx::ValueInfoProto& v, ElementType type, const std::vector<Dim>& dims) {
  onnx::TypeProto_Tensor* tensor = v.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(static_cast<int32_t>(type));
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  for (const Dim& d : dims) {
    onnx::TensorShapeProto_Dimension* dim = shape->add_dim();
    if (d.symbol.empty())
      dim->set_dim_value(d.size);
    else
      dim->set_dim_param(d.symbol);
  }
}

GraphBuilder::GraphBuilder(onnx::GraphProto& graph) : graph_(graph) {}

void GraphBuilder::push_scope(const std::string& name) { scopes_.push_back(name); }
void GraphBuilder::pop_scope() { scopes_.pop_back(); }

std::string GraphBuilder::fresh_name() {
  std::string name;
  for (const std::string& s : scopes_) name += s + ".";
  return name + std::to_string(counter_++);
}

Value GraphBuilder::input(const std::string& name, ElementType type, const std::vector<Dim>& dims) {
  set_tensor_type(*graph_.add_input(), type, dims);
  graph_.mutable_input(graph_.input_size() - 1)->set_name(name);
  return Value{name};
}

void GraphBuilder::output(const Value& value, const std::string& name, ElementType type, const std::vector<Dim>& dims) {
  onnx::NodeProto* n = graph_.add_node();
  n->set_op_type("Identity");
  n->add_input(value.name);
  n->add_output(name);
  onnx::ValueInfoProto* out = graph_.add_output();
  out->set_name(name);
  set_tensor_type(*out, type, dims);
}

Value GraphBuilder::initializer(const std::string& name, ElementType type, const std::vector<int64_t>& dims,
                                const std::string& raw_data) {
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(name);
  t->set_data_type(static_cast<int32_t>(type));
  for (const int64_t d : dims) t->add_dims(d);
  t->set_raw_data(raw_data);
  return Value{name};
}

Value GraphBuilder::initializer_i64(const std::string& name, const std::vector<int64_t>& dims,
                                    const std::vector<int64_t>& values) {
  std::string raw(values.size() * sizeof(int64_t), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());  // x86-64 and aarch64 hosts are little-endian, as ONNX's raw_data
  return initializer(name, ElementType::kInt64, dims, raw);
}

Value GraphBuilder::constant_tensor(const std::vector<int64_t>& values, bool is_scalar) {
  const auto key = std::make_pair(is_scalar, values);
  if (const auto it = constants_.find(key); it != constants_.end()) return Value{it->second};
  // Named by content so that the name does not depend on where the constant was first used.
  std::string name = is_scalar ? "c" : "v";
  for (const int64_t v : values) {  // "_n5" for −5 (the magnitude as unsigned, so INT64_MIN has one too)
    name += v < 0 ? "_n" : "_";
    name += std::to_string(v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v));
  }
  if (values.size() > 8) name = fmt::format("v{}_{}", values.size(), constants_.size());
  std::vector<int64_t> dims;
  if (!is_scalar) dims.push_back(static_cast<int64_t>(values.size()));
  initializer_i64(name, dims, values);
  constants_.emplace(key, name);
  return Value{name};
}

Value GraphBuilder::scalar(int64_t value) { return constant_tensor({value}, true); }
Value GraphBuilder::vector(const std::vector<int64_t>& values) { return constant_tensor(values, false); }

Value GraphBuilder::node(std::string_view op, const std::vector<Value>& inputs,
                         const std::vector<Attribute>& attributes, int outputs) {
  onnx::NodeProto* n = graph_.add_node();
  n->set_op_type(std::string(op));
  for (const Value& v : inputs) {
    if (v.name.empty()) throw Error("ONNX graph builder: empty input name for a " + std::string(op) + " node");
    n->add_input(v.name);
  }
  Value out{fresh_name()};
  n->add_output(out.name);
  for (int i = 1; i < outputs; ++i) n->add_output(fresh_name());  // further outputs (unused)
  for (const Attribute& a : attributes) {
    onnx::AttributeProto* attr = n->add_attribute();
    attr->set_name(a.name);
    if (a.is_list) {
      attr->set_type(onnx::AttributeProto::INTS);
      for (const int64_t v : a.ints) attr->add_ints(v);
    } else {
      attr->set_type(onnx::AttributeProto::INT);
      attr->set_i(a.i);
    }
  }
  return out;
}

Value GraphBuilder::cast(const Value& a, ElementType to) {
  return node("Cast", {a}, {Attribute{"to", static_cast<int64_t>(to), {}, false}});
}

Value GraphBuilder::reduce_max_int32(const Value& a, int64_t axis) {
  const Value narrow = cast(a, ElementType::kInt32);
  return cast(node("ReduceMax", {narrow}, {Attribute{"axes", 0, {axis}, true}, Attribute{"keepdims", 1, {}, false}}),
              ElementType::kInt64);
}

Value GraphBuilder::reduce_min_int32(const Value& a, int64_t axis) {
  const Value narrow = cast(a, ElementType::kInt32);
  return cast(node("ReduceMin", {narrow}, {Attribute{"axes", 0, {axis}, true}, Attribute{"keepdims", 1, {}, false}}),
              ElementType::kInt64);
}

Value GraphBuilder::top1(const Value& a, int64_t axis, bool largest, bool keep_dims) {
  const Value top = node("TopK", {a, vector({1})},
                         {Attribute{"axis", axis, {}, false}, Attribute{"largest", largest ? 1 : 0, {}, false}}, 2);
  return keep_dims ? top : squeeze(top, {axis});
}

Value GraphBuilder::reduce_sum(const Value& a, int64_t axis, bool keep_dims) {
  // ReduceSum takes its axes as an input from opset 13 on.
  return node("ReduceSum", {a, vector({axis})}, {Attribute{"keepdims", keep_dims ? 1 : 0, {}, false}});
}

Value GraphBuilder::gather(const Value& data, const Value& indices, int64_t axis) {
  return node("Gather", {data, indices}, {Attribute{"axis", axis, {}, false}});
}

Value GraphBuilder::transpose(const Value& a, const std::vector<int64_t>& permutation) {
  return node("Transpose", {a}, {Attribute{"perm", 0, permutation, true}});
}

Value GraphBuilder::concat(const std::vector<Value>& parts, int64_t axis) {
  return node("Concat", parts, {Attribute{"axis", axis, {}, false}});
}

Value GraphBuilder::slice(const Value& a, int64_t axis, int64_t start, int64_t end) {
  return node("Slice", {a, vector({start}), vector({end}), vector({axis})});
}

}  // namespace illm::formats::onnx_export
