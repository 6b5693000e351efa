// The guest agent's record (see images/agent/init) and fio's JSON → Sample.
#pragma once

#include <string>

#include "core/sample.h"

namespace kab::fio {

// Fills sample.fio, sample.guest, sample.fio_json, boot_s (guest uptime at
// fio start) and fio_s from the record. Returns "" when the record is
// complete and fio succeeded, else the reason it is not a measurement.
std::string parse_record(const std::string& record, core::Sample& sample);

// fio's JSON (--output-format=json) → metrics of every job of the sample. With
// one reporting group (all jobs together): fio's own group figures. With
// several (stonewall groups, run one after another): their bytes and I/Os over
// their summed runtime. Latency percentiles of the group that moved the most
// bytes; the write side when any job wrote, else the read side. Returns "" or
// a reason; never throws, whatever the JSON.
std::string parse_fio_json(const std::string& json_text, core::FioMetrics& out);

}  // namespace kab::fio
