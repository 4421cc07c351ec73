#pragma once
// The integer LLaMA forward pass of kernels/executor.cpp (full-sequence prefill from position 0, causal attention)
// as one ONNX graph: input `input_ids` int64 [1, T]; outputs `logits` int64 [1, T, vocab] (the LM head's aligned
// accumulator) and its per-token dyadic `logits_scale_mantissa`, `logits_scale_exponent` int64 [1, T]
// (real logit = logits · mantissa / 2^exponent).
#include "formats/onnx/graph_builder.h"
#include "kernels/quantized_model.h"

namespace illm::formats::onnx_export {

inline constexpr const char* kInputIds = "input_ids";
inline constexpr const char* kLogits = "logits";
inline constexpr const char* kLogitsScaleMantissa = "logits_scale_mantissa";
inline constexpr const char* kLogitsScaleExponent = "logits_scale_exponent";

// Refuses (illm::Error naming the field and the reason) every model the graph cannot run bit-exactly with 64-bit
// integers: the 64-bit bounds of docs/onnx-export.md, and settings the graph does not implement.
void check_exportable(const QuantizedModel& model);

// Adds the inputs, initializers, nodes and outputs of the whole model to the builder's graph.
void build_llama_graph(GraphBuilder& graph, const QuantizedModel& model);

}  // namespace illm::formats::onnx_export
