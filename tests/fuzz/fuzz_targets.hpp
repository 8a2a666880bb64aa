#pragma once
// Bodies of the libFuzzer targets. The libFuzzer entry points (seri_fuzz.cpp,
// cluster_frame_fuzz.cpp) and the corpus replay test call these, so the same
// checks run under the fuzzer and in every ctest build.
//
// Both return 0 and abort the process (__builtin_trap) when an invariant fails,
// after printing the failed condition to stderr.

#include <cstddef>
#include <cstdint>

/// Input: a skynet.pack payload. Checks unpack/pack round trips.
int csk_fuzz_seri(const std::uint8_t* data, std::size_t size);

/// Input: control byte | chunk sizes | cluster byte stream (layout in cluster_target.cpp).
/// Splits the stream with frame_reader, decodes each frame as a request and as a
/// response, re-encodes the single-frame ones and runs both assemblers against a model.
int csk_fuzz_cluster(const std::uint8_t* data, std::size_t size);

/// Input: one supervisor <-> worker channel record. decode must refuse it or return a
/// message that encodes back to exactly the input.
int csk_fuzz_channel(const std::uint8_t* data, std::size_t size);

/// Input: an entity snapshot (services/entity/snapshot.hpp) of type "fuzz.entity". restore
/// and apply must refuse it and change nothing, or take it; a restored full snapshot must
/// re-encode to exactly the input.
int csk_fuzz_entity(const std::uint8_t* data, std::size_t size);
/// How many of the two stores (string keys, integer keys) took the last csk_fuzz_entity input.
int csk_fuzz_entity_accepted();

/// Input: bytes an admin endpoint client sent. unpack_http and parse_request against
/// reference rules (layout and checks at the top of http_target.cpp).
int csk_fuzz_http(const std::uint8_t* data, std::size_t size);

/// Input: control byte, then one transfer message body or a transfer record stream
/// (layout in transfer_target.cpp). decode_body round trips, parse_record against the
/// layout, recv over a real socketpair against a model.
int csk_fuzz_transfer(const std::uint8_t* data, std::size_t size);

/// Input: control byte (the importing assembler's limits), then a request assembler state
/// blob. import_state against a reference parser; refusals change nothing; accepted states
/// export canonically and keep working (layout in assembler_state_target.cpp).
int csk_fuzz_assembler_state(const std::uint8_t* data, std::size_t size);

/// Input: an entity journal file: its header page (the first 4096 bytes), then ring bytes
/// (layout in journal_target.cpp). Superblocks re-encode to themselves, the chain scan stays
/// in the ring and counts without gaps, frames hold their checksums.
int csk_fuzz_journal(const std::uint8_t* data, std::size_t size);
/// How many delta and clear records the last csk_fuzz_journal input's chain held.
int csk_fuzz_journal_records();
