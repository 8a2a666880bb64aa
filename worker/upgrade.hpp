#pragma once
// The two halves of a hot upgrade inside the workers (docs/upgrade.md has the whole
// sequence, the transfer catalog and the failure table):
//
//   hand_over  the old worker N: offer -> pre-copy (pages, then deltas while it serves)
//              -> freeze (stop accepting, stop reading at a frame boundary, let calls in
//              flight finish, final delta sealing the stores) -> commit -> every inbound
//              connection (cluster and gates) with its fd, unread bytes and protocol
//              state -> done -> wait for serving. Any failure before serving rolls N back
//              (stores unsealed, reading resumed, listeners reopened) and N serves on.
//   take_over  the new worker N+1, after booting its services and before serving: check
//              the offer (every store id and type present here, every snapshot header
//              readable), clear and seal its stores, apply pages and deltas, unseal at
//              commit, adopt each connection as it comes, open its listeners at done,
//              answer serving.
//
// Both talk over the transfer socket (common/channel/transfer.hpp) and reach services by
// messages only: entity stores by their entity::directory handles, gates by ".gate.<name>"
// with the "__handover" commands (services/gate/gate.hpp).
//
// Threads: hand_over runs on a thread of its own while the node's main loop keeps
// heartbeating; take_over runs on the main thread. Neither may run twice at once.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/actor/runtime.hpp"
#include "common/base/result.hpp"
#include "common/channel/messages.hpp"

namespace csk::cluster {
class node;
}
namespace csk::entity {
class directory;
}

namespace csk::upgrade {

/// What of the node the upgrade touches.
struct node_parts {
  actor::runtime* rt = nullptr;
  cluster::node* cluster = nullptr;        ///< nullptr: no cluster listener (cluster.self unset)
  std::vector<std::string> gates;          ///< config gate names; the services are ".gate.<name>"
  entity::directory* entities = nullptr;
  /// Stops accepting on every listener this node serves (cluster and gates' are done by
  /// hand_over itself; this is for the cluster listener, which only the node owner opens).
  std::function<void()> close_cluster_listener;
  /// Serves the cluster listener again (rollback in N; cutover in N+1).
  std::function<result<void, std::string>()> open_cluster_listener;
};

/// Tuning; the defaults are what `cppskynet upgrade` uses.
struct options {
  /// Entities per snapshot page. Each page holds its store for its whole write (about
  /// 0.5 ms per 2000 entities): smaller pages, shorter stalls for the store's callers.
  std::size_t page_entries = 2000;
  std::size_t pages_in_flight = 4;         ///< pages sent and not yet applied
  /// A delta round after every this many pages of a store (0 = only after the pages):
  /// keeps the changes that pile up during a long page copy from landing in one big delta.
  std::size_t pages_per_delta = 25;
  std::size_t delta_rounds = 8;            ///< most pre-copy delta rounds
  std::uint64_t small_delta = 2000;        ///< stop the rounds once a round moves at most this many keys
  std::size_t max_message = std::size_t{1} << 30;  ///< largest transfer message accepted
};

/// What hand_over ends with.
struct hand_over_outcome {
  /// ok = 1: N+1 serves, N must exit now; ok = 0: abandoned, rolled back, N serves on.
  channel::upgrade_result verdict;
  /// The upgrade failed after its commit (N+1 had become the writer of the entity
  /// journals) and N+1 could not be seen gone: N keeps its stores sealed and must exit
  /// without serving; the supervisor then starts a worker that recovers the journals.
  /// (When N+1 is seen gone, N unseals: its stores reload whatever N+1 wrote.)
  bool must_exit = false;
};

/// The old worker's side. Always returns a verdict with its timings.
hand_over_outcome hand_over(node_parts& node, int transfer_fd, std::uint32_t generation,
                            std::chrono::milliseconds budget, const options& o = {});

struct takeover_stats {
  std::uint64_t stores = 0, pages = 0, connections = 0, connections_lost = 0;
};

/// The new worker's side. On success it serves (listeners open, connections adopted). On
/// an error the worker must exit without serving (N rolls back).
result<takeover_stats, std::string> take_over(node_parts& node, int transfer_fd, std::chrono::milliseconds budget,
                                              const options& o = {});

}  // namespace csk::upgrade
