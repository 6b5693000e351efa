// Entry points shared by the libFuzzer targets and the unit tests that replay their findings.
// Each returns 0; a bug shows up as a crash or a sanitizer report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kab::dpu::fuzz {

// A new directory under $TMPDIR (or /tmp) for a target's scratch export.
std::string scratch_dir(const std::string& prefix);

// Input: [u8 log2 ring size][u16 head][u16 avail idx][guest memory bytes...]. The memory holds
// the descriptor table, then the available ring, then the used ring, at GPA 0x1000; the chain
// and the rings are walked exactly as for a guest.
int walker_one_input(const uint8_t* data, size_t size);

// Input: [u16 writable size][u8 split][FUSE request bytes...], served by a FuseServer over a
// scratch directory (already past INIT). FALLOCATE is skipped so the fuzzer cannot fill a disk.
int fuse_one_input(const uint8_t* data, size_t size);

// Input: messages [u8 request][u8 mode][u8 queue][u8 length][payload...]. mode bit 0: NEED_REPLY;
// bit 1: no fd; bits 2-3: the fd sent (eventfd, the guest's memfd, a short memfd, a pipe);
// bit 7: a well-formed payload for the request instead of the bytes given. Request 0xff writes
// its payload raw and ends the input. With `race`, a guest thread posts FUSE requests on queue
// 1 meanwhile. Served by a VhostUserServer over a scratch directory.
int vhost_one_input(const uint8_t* data, size_t size, bool race);
// Requests of `opcode` the vhost target's device has served (to check inputs reach the rings).
uint64_t vhost_requests_served(uint32_t opcode);

} // namespace kab::dpu::fuzz
