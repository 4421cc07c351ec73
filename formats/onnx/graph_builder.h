#pragma once
// A small builder of ONNX graphs on top of libonnx's protobuf classes: named values, one method per ONNX operator the
// exporter uses, deduplicated integer constants and deterministic names (a scope prefix and a counter), so that the
// same calls always give the same bytes. It knows nothing about illm's numerics (formats/onnx/integer_primitives.h
// and formats/onnx/di_operators.h build on it).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

namespace illm::formats::onnx_export {

// The element types the exported graphs use: integers and bool only.
enum class ElementType : int32_t {
  kUint8 = onnx::TensorProto::UINT8,
  kInt8 = onnx::TensorProto::INT8,
  kInt16 = onnx::TensorProto::INT16,
  kInt32 = onnx::TensorProto::INT32,
  kInt64 = onnx::TensorProto::INT64,
  kBool = onnx::TensorProto::BOOL,
};

// One value (tensor) of the graph, by name.
struct Value {
  std::string name;
};

// A dimension of a graph input or output: a fixed size or a symbolic name ("T").
struct Dim {
  int64_t size = 0;
  std::string symbol;
  static Dim fixed(int64_t n) { return Dim{n, {}}; }
  static Dim named(std::string s) { return Dim{0, std::move(s)}; }
};

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto& graph);

  // Names of values created inside a scope start with the scope path ("l3.attn.17"): readable and deterministic.
  void push_scope(const std::string& name);
  void pop_scope();

  Value input(const std::string& name, ElementType type, const std::vector<Dim>& dims);
  // Adds a graph output `name` (an Identity of `value`).
  void output(const Value& value, const std::string& name, ElementType type, const std::vector<Dim>& dims);

  // Named initializers (weights, tables). `data` holds the little-endian bytes of the elements.
  Value initializer(const std::string& name, ElementType type, const std::vector<int64_t>& dims,
                    const std::string& raw_data);
  Value initializer_i64(const std::string& name, const std::vector<int64_t>& dims, const std::vector<int64_t>& values);

  // Deduplicated int64 constants: a 0-d scalar, or a 1-d vector.
  Value scalar(int64_t value);
  Value vector(const std::vector<int64_t>& values);

  // ---- ONNX operators (opset 17), one output each unless noted.
  Value add(const Value& a, const Value& b) { return node("Add", {a, b}); }
  Value sub(const Value& a, const Value& b) { return node("Sub", {a, b}); }
  Value mul(const Value& a, const Value& b) { return node("Mul", {a, b}); }
  Value div(const Value& a, const Value& b) { return node("Div", {a, b}); }  // integers: non-negative operands only
  Value mod(const Value& a, const Value& b) { return node("Mod", {a, b}); }  // fmod = 0: sign of the divisor
  Value neg(const Value& a) { return node("Neg", {a}); }
  Value abs(const Value& a) { return node("Abs", {a}); }
  // Maximum and minimum as Where of a comparison, not Max/Min: ONNX Runtime 1.30's int64 Max, Min (and Sign, Clip)
  // give wrong results on x86-64 for values between 2^31 and 2^32 (docs/onnx-export.md).
  Value max(const Value& a, const Value& b) { return where(greater(a, b), a, b); }
  Value min(const Value& a, const Value& b) { return where(less(a, b), a, b); }
  Value where(const Value& condition, const Value& a, const Value& b) { return node("Where", {condition, a, b}); }
  Value equal(const Value& a, const Value& b) { return node("Equal", {a, b}); }
  Value less(const Value& a, const Value& b) { return node("Less", {a, b}); }
  Value less_equal(const Value& a, const Value& b) { return node("LessOrEqual", {a, b}); }
  Value greater(const Value& a, const Value& b) { return node("Greater", {a, b}); }
  Value greater_equal(const Value& a, const Value& b) { return node("GreaterOrEqual", {a, b}); }
  Value logical_and(const Value& a, const Value& b) { return node("And", {a, b}); }
  Value logical_not(const Value& a) { return node("Not", {a}); }
  Value cast(const Value& a, ElementType to);
  Value matmul(const Value& a, const Value& b) { return node("MatMul", {a, b}); }
  // Maximum and minimum of int64 values along an axis of FIXED size, as TopK with k = 1, not ReduceMax/ReduceMin:
  // ONNX Runtime 1.30's int64 ReduceMax and ReduceMin (like Max and Min) are wrong on x86-64 when values share their
  // upper 32 bits (docs/onnx-export.md). Along a symbolic axis (T) TopK's shape inference loses every dimension, so
  // reductions over keys use reduce_max_int32 / IntegerPrimitives::wide_max instead.
  Value reduce_max(const Value& a, int64_t axis, bool keep_dims = true) { return top1(a, axis, true, keep_dims); }
  Value reduce_min(const Value& a, int64_t axis, bool keep_dims = true) { return top1(a, axis, false, keep_dims); }
  // ReduceMax / ReduceMin (keepdims) on int32 (exact there) of int64 values that lie in the int32 range; int64 out.
  Value reduce_max_int32(const Value& a, int64_t axis);
  Value reduce_min_int32(const Value& a, int64_t axis);
  Value reduce_sum(const Value& a, int64_t axis, bool keep_dims = true);
  Value gather(const Value& data, const Value& indices, int64_t axis = 0);
  Value reshape(const Value& a, const std::vector<int64_t>& shape) { return node("Reshape", {a, vector(shape)}); }
  Value reshape(const Value& a, const Value& shape) { return node("Reshape", {a, shape}); }
  Value transpose(const Value& a, const std::vector<int64_t>& permutation);
  Value unsqueeze(const Value& a, const std::vector<int64_t>& axes) { return node("Unsqueeze", {a, vector(axes)}); }
  Value squeeze(const Value& a, const std::vector<int64_t>& axes) { return node("Squeeze", {a, vector(axes)}); }
  Value cumsum(const Value& a, int64_t axis) { return node("CumSum", {a, scalar(axis)}); }
  Value concat(const std::vector<Value>& parts, int64_t axis);
  Value slice(const Value& a, int64_t axis, int64_t start, int64_t end);

  int64_t node_count() const { return graph_.node_size(); }

 private:
  struct Attribute {
    std::string name;
    int64_t i = 0;
    std::vector<int64_t> ints;
    bool is_list = false;
  };
  Value node(std::string_view op, const std::vector<Value>& inputs, const std::vector<Attribute>& attributes = {},
             int outputs = 1);
  Value top1(const Value& a, int64_t axis, bool largest, bool keep_dims);
  std::string fresh_name();
  Value constant_tensor(const std::vector<int64_t>& values, bool scalar);

  onnx::GraphProto& graph_;
  std::vector<std::string> scopes_;
  int64_t counter_ = 0;
  std::map<std::pair<bool, std::vector<int64_t>>, std::string> constants_;
};

// The dims of `v` for a value_info (graph inputs and outputs).
void set_tensor_type(onnx::ValueInfoProto& v, ElementType type, const std::vector<Dim>& dims);

}  // namespace illm::formats::onnx_export
