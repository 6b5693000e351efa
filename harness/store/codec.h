// The JSON text of the model values the ResultStore keeps in TEXT columns: a
// sample's cell, findings and vmstat deltas, a kernel's patch hashes and
// paths, a run's extras. Only these flat shapes — an object of strings or of
// numbers, an array of strings — hand-written, so the store needs no JSON
// library. Pure functions.
//
// Contract:
//  - Encoders never fail. Strings are escaped as RFC 8259 asks (" \ and the
//    control characters, those without a short escape as \u00XX); other bytes,
//    UTF-8 included, are written as they are. Numbers are written in the
//    shortest form that reads back to the same double; NaN and infinities,
//    which JSON lacks, as null. Members keep the container's order.
//  - Decoders accept exactly one value of the shape, with JSON whitespace
//    around it. They return std::nullopt on malformed input: empty text, a
//    different container, a nested container, true/false, a bad escape, a
//    missing separator, trailing text. Within the shape they are lenient: a
//    null or a number where a string belongs reads as "", a string where a
//    number belongs reads as 0, null as a number reads as NaN.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace kab::store {

// {"bs":"1M","rw":"randwrite"} in key order (run extras, kernel paths).
std::string encode_string_map(const std::map<std::string, std::string>& m);
// {"rw":"randwrite","bs":"1M"} in the cell's own order.
std::string encode_cell(const core::Cell& cell);
// ["a","b"] (patch hashes, health findings).
std::string encode_string_list(const std::vector<std::string>& v);
// {"nr_dirtied":5,"pgfault":0.5} (vmstat deltas); NaN as null.
std::string encode_number_map(const std::map<std::string, double>& m);

// The inverses. nullopt when `json` is malformed (see above).
// A key given twice keeps its last value.
std::optional<std::map<std::string, std::string>> decode_string_map(std::string_view json);
// Order and repeated keys are kept as written.
std::optional<core::Cell> decode_cell(std::string_view json);
std::optional<std::vector<std::string>> decode_string_list(std::string_view json);
// A key given twice keeps its last value.
std::optional<std::map<std::string, double>> decode_number_map(std::string_view json);

}  // namespace kab::store
