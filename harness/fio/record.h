// The guest agent's record (see images/agent/init) and fio's JSON → Sample.
#pragma once

#include <string>

#include "core/sample.h"

namespace kab::fio {

// Fills sample.fio, sample.guest, sample.fio_json, boot_s (guest uptime at
// fio start) and fio_s from the record. Returns "" when the record is
// complete and fio succeeded, else the reason it is not a measurement.
std::string parse_record(const std::string& record, core::Sample& sample);

// fio's JSON (--output-format=json) → metrics of every job of the sample, per
// direction and together. Each direction: with one reporting group (all jobs
// together) fio's own group figures; with several (stonewall groups, run one
// after another) its bytes and I/Os over its summed runtime. Together: the one
// direction that moved bytes; a job that reads and writes adds fio's two
// figures; phases one after another give all bytes over the time the phases
// took. Latency percentiles of the group and direction that moved the most
// bytes. Returns "" or a reason; never throws, whatever the JSON.
std::string parse_fio_json(const std::string& json_text, core::FioMetrics& out);

}  // namespace kab::fio
