#include "worker/upgrade.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "common/channel/transfer.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "services/cluster/node.hpp"
#include "services/entity/directory.hpp"
#include "services/entity/registry.hpp"
#include "services/entity/snapshot.hpp"
#include "services/gate/gate.hpp"

namespace csk::upgrade {
namespace {

namespace tx = channel::transfer;
using clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;
using actor::values;

std::shared_ptr<spdlog::logger> log() { return logger("handover"); }

ms left(clock::time_point deadline) {
  return std::max(ms(0), std::chrono::duration_cast<ms>(deadline - clock::now()));
}
std::uint64_t us_since(clock::time_point t) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t).count());
}

// A call from this (non-service) thread into a service, bounded by the deadline.
result<values, std::string> call(actor::runtime& rt, const actor::address& to, values args,
                                 clock::time_point deadline) {
  const ms timeout = std::max(left(deadline), ms(1));
  auto f = rt.call(to, std::move(args), timeout);
  if (f.wait_for(timeout + ms(1000)) != std::future_status::ready) return unexpected(std::string("no answer in time"));
  auto r = f.get();
  if (!r) return unexpected(r.error().text);
  return std::move(*r);
}

byte_buffer bytes_of(const lua_value& v) {
  const std::string& s = v.as_string();
  return byte_buffer(s.begin(), s.end());
}
lua_value string_of(const byte_buffer& b) { return lua_value(std::string(b.begin(), b.end())); }

std::string gate_address(const std::string& name) { return ".gate." + name; }

// Why a receive failed, in words.
std::string describe(const channel::recv_error& e, const char* waiting_for) {
  switch (e.why) {
    case channel::recv_error::kind::timeout: return std::string("timed out waiting for ") + waiting_for;
    case channel::recv_error::kind::closed: return std::string("the other worker is gone (waiting for ") + waiting_for + ")";
    case channel::recv_error::kind::failed: break;
  }
  return e.text;
}

// ------------------------------------------------------------------ old side --

class old_side {
 public:
  old_side(node_parts& n, int fd, std::uint32_t generation, ms budget, const options& o)
      : n_(n), fd_(fd), generation_(generation), o_(o), start_(clock::now()), deadline_(start_ + budget) {}

  hand_over_outcome run() {
    result_.phase = "offer";
    std::string error = steps();
    result_.total_us = us_since(start_);
    if (error.empty()) {
      result_.ok = 1;
      result_.phase = "done";
      return {result_, false};
    }
    result_.reason = error;
    log()->error("upgrade abandoned in {}: {}; rolling back", result_.phase, error);
    (void)tx::send(fd_, tx::abort{error}, ms(200));
    // After the commit N+1 writes the entity journals: N may write them again only once
    // N+1 is gone (its end of the transfer socket closes when its process ends).
    if (committed_ && !peer_gone()) {
      result_.reason += "; the new worker did not go away: this worker exits without serving, and the next one "
                        "recovers the entity journals";
      log()->critical("{}", result_.reason);
      result_.total_us = us_since(start_);
      return {result_, true};
    }
    rollback();
    result_.total_us = us_since(start_);
    return {result_, false};
  }

  // Reads what N+1 still sends until its end closes: true once it has (its process
  // ended), false if it is still there a while after the budget (the supervisor kills a
  // new worker at its budget plus a grace).
  bool peer_gone() {
    const auto until = std::max(deadline_, clock::now()) + ms(5000);
    for (;;) {
      auto m = tx::recv(fd_, left(until), o_.max_message);
      if (!m && m.error().why == channel::recv_error::kind::closed) return true;
      if (clock::now() >= until) return false;
      // a message (its abort, say) or a bad record: read on until the end
    }
  }

 private:
  struct store {
    std::string id, type;
    actor::handle_t handle = 0;
  };

  std::string steps() {
    // -- offer --
    tx::offer offer;
    offer.generation = generation_;
    offer.gates = n_.gates;
    if (n_.entities != nullptr) {
      for (const auto& e : n_.entities->list()) {
        auto h = call(*n_.rt, e.handle, values{"header"}, deadline_);
        if (!h) return "entity '" + e.id + "': header: " + h.error();
        offer.stores.push_back({e.id, e.type, bytes_of(h->at(0))});
        stores_.push_back({e.id, e.type, e.handle});
      }
    }
    if (auto r = tx::send(fd_, offer, left(deadline_)); !r) return r.error();
    auto answer = tx::recv(fd_, left(deadline_), o_.max_message);
    if (!answer) return describe(answer.error(), "the new worker's answer to the offer");
    if (auto* no = std::get_if<tx::refuse>(&answer->msg)) return "the new worker refused: " + no->reason;
    if (auto* ab = std::get_if<tx::abort>(&answer->msg)) return "the new worker gave up: " + ab->reason;
    if (!std::holds_alternative<tx::accept>(answer->msg)) return "unexpected answer to the offer";

    // -- pre-copy: full pages while serving, then deltas while they shrink --
    result_.phase = "pre-copy";
    log()->info("pre-copy of {} entity stores", stores_.size());
    const auto precopy = clock::now();
    for (auto& s : stores_) {
      if (auto r = call(*n_.rt, s.handle, values{entity::upgrade_key(), "track"}, deadline_); !r) return "entity '" + s.id + "': track: " + r.error();
      tracking_ = true;
    }
    for (auto& s : stores_) {
      lua_value cursor;
      do {
        auto page = call(*n_.rt, s.handle, values{"snapshot_page", cursor, static_cast<std::int64_t>(o_.page_entries)},
                         deadline_);
        if (!page) return "entity '" + s.id + "': snapshot_page: " + page.error();
        byte_buffer bytes = bytes_of(page->at(0));
        cursor = page->size() > 1 ? page->at(1) : lua_value{};
        if (auto h = entity::read_header(bytes)) result_.entities += h->entries;
        if (auto e = send_page(s, std::move(bytes)); !e.empty()) return e;
        if (o_.pages_per_delta > 0 && !cursor.is_nil() && ++pages_since_delta_ % o_.pages_per_delta == 0) {
          std::uint64_t moved = 0;  // applied in order after the pages before it: still exact
          if (auto d = delta(s, false, moved); !d.empty()) return d;
        }
      } while (!cursor.is_nil());
    }
    if (auto e = wait_applied(0); !e.empty()) return e;
    for (std::size_t round = 0; round < o_.delta_rounds; ++round) {
      std::uint64_t moved = 0;
      for (auto& s : stores_) {
        auto d = delta(s, false, moved);
        if (!d.empty()) return d;
      }
      if (auto e = wait_applied(0); !e.empty()) return e;
      if (moved <= o_.small_delta) break;
    }
    result_.precopy_us = us_since(precopy);

    // -- freeze: nothing new is read; calls in flight finish; the final delta seals --
    result_.phase = "freeze";
    log()->info("freezing: {} entities pre-copied", result_.entities);
    frozen_at_ = clock::now();
    frozen_ = true;
    if (n_.cluster != nullptr) {
      n_.close_cluster_listener();
      n_.cluster->pause_inbound();
    }
    for (const auto& g : n_.gates) {
      if (auto r = call(*n_.rt, gate_address(g), values{gate::handover_key(), "freeze"}, deadline_); !r) {
        return "gate " + g + ": freeze: " + r.error();
      }
    }
    if (auto e = wait_quiet(); !e.empty()) return e;
    std::uint64_t final_moved = 0;
    for (auto& s : stores_) {
      auto d = delta(s, true, final_moved);
      if (!d.empty()) return d;
    }
    if (auto e = wait_applied(0); !e.empty()) return e;
    result_.final_delta = final_moved;
    if (auto r = tx::send(fd_, tx::commit{}, left(deadline_)); !r) return r.error();
    committed_ = true;

    // -- hand-over of every established inbound connection --
    result_.phase = "hand-over";
    std::uint64_t sent = 0;
    if (n_.cluster != nullptr) {
      for (const auto id : n_.cluster->inbound_ids()) {
        auto h = n_.cluster->detach_inbound(id, std::max(left(deadline_), ms(1))).get();
        // Refused while a call is in flight (the freeze drained them, so this is a call
        // a local service made... or a race): wait for its answer and try again.
        while (!h && h.error().find("in flight") != std::string::npos && clock::now() < deadline_) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          h = n_.cluster->detach_inbound(id, std::max(left(deadline_), ms(1))).get();
        }
        if (!h) {  // e.g. the peer closed meanwhile: nothing to hand over
          log()->error("cluster connection {} not handed over: {}", id, h.error());
          continue;
        }
        tx::conn c{"cluster", h->connection.peer, std::move(h->connection.unread), std::move(h->agent_state)};
        const int fds[] = {h->connection.fd.get()};
        if (auto r = tx::send(fd_, c, left(deadline_), fds); !r) return r.error();
        ++sent;
      }
    }
    for (const auto& g : n_.gates) {
      // The detach's own limit is half the time left: its reply (which owns the fds) must
      // come back before this call gives up on it.
      const auto detach_ms = std::max<std::int64_t>(1, left(deadline_).count() / 2);
      auto r = call(*n_.rt, gate_address(g), values{gate::handover_key(), "detach", detach_ms}, deadline_);
      if (!r) return "gate " + g + ": detach: " + r.error();
      if (r->empty() || !r->at(0).is_table()) continue;
      for (const auto& entry : r->at(0).as_table().array) {
        const lua_table& t = entry.as_table();
        const lua_value* fd = t.find("fd");
        const lua_value* unread = t.find("unread");
        const lua_value* peer = t.find("peer");
        const lua_value* outgoing = t.find("outgoing");
        if (fd == nullptr || !fd->is_integer()) continue;
        unique_fd owned(static_cast<int>(fd->as_integer()));  // ours now: closed once sent
        // A gate connection's state is one byte: 1 for one the gate made (connect()).
        tx::conn c{"gate:" + g, peer != nullptr && peer->is_string() ? peer->as_string() : "",
                   unread != nullptr && unread->is_string() ? bytes_of(*unread) : byte_buffer{},
                   byte_buffer{static_cast<std::uint8_t>(outgoing != nullptr && outgoing->truthy() ? 1 : 0)}};
        const int fds[] = {owned.get()};
        if (auto s = tx::send(fd_, c, left(deadline_), fds); !s) return s.error();
        ++sent;
      }
    }
    result_.connections = sent;
    if (auto r = tx::send(fd_, tx::done{sent}, left(deadline_)); !r) return r.error();

    // -- cutover: the new worker serves --
    result_.phase = "cutover";
    auto serving = tx::recv(fd_, left(deadline_), o_.max_message);
    if (!serving) return describe(serving.error(), "serving");
    if (auto* ab = std::get_if<tx::abort>(&serving->msg)) return "the new worker gave up: " + ab->reason;
    if (!std::holds_alternative<tx::serving>(serving->msg)) return "unexpected message instead of serving";
    result_.frozen_us = us_since(frozen_at_);
    return "";
  }

  std::string send_page(const store& s, byte_buffer bytes) {
    result_.state_bytes += bytes.size();
    if (auto r = tx::send(fd_, tx::page{s.id, std::move(bytes)}, left(deadline_)); !r) return r.error();
    ++in_flight_;
    return wait_applied(o_.pages_in_flight);
  }

  // Receives `applied` until at most `keep` pages are unanswered.
  std::string wait_applied(std::size_t keep) {
    while (in_flight_ > keep) {
      auto a = tx::recv(fd_, left(deadline_), o_.max_message);
      if (!a) return describe(a.error(), "applied");
      if (auto* ab = std::get_if<tx::abort>(&a->msg)) return "the new worker gave up: " + ab->reason;
      if (!std::holds_alternative<tx::applied>(a->msg)) return "unexpected message instead of applied";
      --in_flight_;
    }
    return "";
  }

  std::string delta(const store& s, bool seal, std::uint64_t& moved) {
    auto d = seal ? call(*n_.rt, s.handle, values{entity::upgrade_key(), "delta", true}, deadline_)
                  : call(*n_.rt, s.handle, values{entity::upgrade_key(), "delta"}, deadline_);
    if (!d) return "entity '" + s.id + "': delta: " + d.error();
    if (seal) sealed_ = true;
    byte_buffer bytes = bytes_of(d->at(0));
    if (auto h = entity::read_header(bytes)) {
      moved += h->entries + h->deleted;
      result_.delta_entities += h->entries + h->deleted;
    }
    return send_page(s, std::move(bytes));
  }

  // The freeze's drain: every call read before the freeze is answered. Polls (the
  // counters are the net threads'; this thread has nothing to wait on).
  std::string wait_quiet() {
    for (;;) {
      std::size_t busy = n_.cluster != nullptr ? n_.cluster->inbound_in_flight() : 0;
      for (const auto& g : n_.gates) {
        auto r = call(*n_.rt, gate_address(g), values{gate::handover_key(), "in_flight"}, deadline_);
        if (!r) return "gate " + g + ": in_flight: " + r.error();
        busy += static_cast<std::size_t>(r->at(0).as_integer());
      }
      if (busy == 0) return "";
      if (clock::now() >= deadline_) return std::to_string(busy) + " requests still in flight at the deadline";
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  void rollback() {
    const auto until = clock::now() + ms(5000);
    for (auto& s : stores_) {
      if (sealed_) (void)call(*n_.rt, s.handle, values{entity::upgrade_key(), "unseal"}, until);
      if (tracking_) (void)call(*n_.rt, s.handle, values{entity::upgrade_key(), "untrack"}, until);
    }
    if (!frozen_) return;
    if (n_.cluster != nullptr) {
      n_.cluster->resume_inbound();
      if (auto r = n_.open_cluster_listener(); !r) log()->critical("rollback: cluster listener: {}", r.error());
    }
    for (const auto& g : n_.gates) {
      if (auto r = call(*n_.rt, gate_address(g), values{gate::handover_key(), "resume"}, until); !r) {
        log()->critical("rollback: gate {}: {}", g, r.error());
      }
    }
    log()->warn("rolled back: serving again");
  }

  node_parts& n_;
  const int fd_;
  const std::uint32_t generation_;
  const options o_;
  const clock::time_point start_, deadline_;
  clock::time_point frozen_at_;
  std::vector<store> stores_;
  std::size_t in_flight_ = 0;
  std::size_t pages_since_delta_ = 0;
  bool tracking_ = false, frozen_ = false, sealed_ = false, committed_ = false;
  channel::upgrade_result result_;
};

// ------------------------------------------------------------------ new side --

class new_side {
 public:
  new_side(node_parts& n, int fd, ms budget, const options& o)
      : n_(n), fd_(fd), o_(o), deadline_(clock::now() + budget) {}

  result<takeover_stats, std::string> run() {
    std::string error = steps();
    if (error.empty()) return stats_;
    (void)tx::send(fd_, tx::abort{error}, ms(200));
    return unexpected(error);
  }

 private:
  std::string steps() {
    auto first = tx::recv(fd_, left(deadline_), o_.max_message);
    if (!first) return describe(first.error(), "the offer");
    auto* offer = std::get_if<tx::offer>(&first->msg);
    if (offer == nullptr) return "expected an offer";
    if (std::string why = check(*offer); !why.empty()) {
      log()->error("refusing the upgrade: {}", why);
      (void)tx::send(fd_, tx::refuse{why}, left(deadline_));
      return "refused: " + why;
    }
    for (const auto& [id, h] : stores_) {  // start from nothing; nobody writes until commit
      if (auto r = call(*n_.rt, h, values{"clear"}, deadline_); !r) return "entity '" + id + "': clear: " + r.error();
      if (auto r = call(*n_.rt, h, values{entity::upgrade_key(), "seal"}, deadline_); !r) return "entity '" + id + "': seal: " + r.error();
    }
    if (auto r = tx::send(fd_, tx::accept{}, left(deadline_)); !r) return r.error();
    bool committed = false;
    for (;;) {
      auto m = tx::recv(fd_, left(deadline_), o_.max_message);
      if (!m) return describe(m.error(), committed ? "connections" : "state");
      if (auto* p = std::get_if<tx::page>(&m->msg)) {
        auto it = stores_.find(p->store);
        if (committed || it == stores_.end()) return "a page for '" + p->store + "' out of place";
        auto r = call(*n_.rt, it->second, values{entity::upgrade_key(), "apply", string_of(p->bytes)}, deadline_);
        if (!r) return "entity '" + p->store + "': apply: " + r.error();
        ++stats_.pages;
        tx::applied a{p->store, static_cast<std::uint64_t>(r->at(0).as_integer()),
                      static_cast<std::uint64_t>(r->at(1).as_integer())};
        if (auto s = tx::send(fd_, a, left(deadline_)); !s) return s.error();
      } else if (std::holds_alternative<tx::commit>(m->msg)) {
        // The state is complete and the old worker is frozen: the stores are ours.
        committed = true;
        for (const auto& [id, h] : stores_) {
          if (auto r = call(*n_.rt, h, values{entity::upgrade_key(), "unseal"}, deadline_); !r) return "entity '" + id + "': unseal: " + r.error();
        }
      } else if (auto* c = std::get_if<tx::conn>(&m->msg)) {
        if (!committed) return "a connection before commit";
        adopt(*c, std::move(m->fds.at(0)));
      } else if (auto* d = std::get_if<tx::done>(&m->msg)) {
        if (!committed) return "done before commit";
        (void)d;
        return cut_over();
      } else if (auto* ab = std::get_if<tx::abort>(&m->msg)) {
        return "the old worker gave up: " + ab->reason;
      } else {
        return "unexpected " + std::string(tx::name_of(tx::kind_of(m->msg)));
      }
    }
  }

  std::string check(const tx::offer& offer) {
    for (const auto& s : offer.stores) {
      auto e = n_.entities != nullptr ? n_.entities->find(s.id) : std::nullopt;
      if (!e) return "no entity service with id '" + s.id + "' (type " + s.type + ") in the new worker";
      if (e->type != s.type) return "entity '" + s.id + "' is of type " + e->type + " here, " + s.type + " there";
      if (auto h = entity::check_snapshot(s.header); !h) return h.error();
      stores_[s.id] = e->handle;
    }
    for (const auto& g : offer.gates) {
      if (std::find(n_.gates.begin(), n_.gates.end(), g) == n_.gates.end()) return "no gate '" + g + "' in the new worker";
    }
    return "";
  }

  // One connection. A failure loses that connection only (its peer sees a close), not the
  // upgrade: the state is already here and the old worker no longer serves.
  void adopt(tx::conn& c, unique_fd fd) {
    if (c.listener == "cluster" && n_.cluster != nullptr) {
      net::detached_connection d{std::move(fd), std::move(c.unread), c.peer};
      auto r = n_.cluster->adopt_inbound(d, c.state);
      if (r) {
        ++stats_.connections;
        return;
      }
      log()->error("cluster connection from {} lost in the hand-over: {}", c.peer, r.error());
    } else if (c.listener.rfind("gate:", 0) == 0) {
      const std::string g = c.listener.substr(5);
      const int raw = fd.release();  // the gate owns it from the call on (closes it on failure)
      const bool outgoing = !c.state.empty() && c.state[0] == 1;
      auto r = call(*n_.rt, gate_address(g),
                    values{gate::handover_key(), "adopt", static_cast<std::int64_t>(raw), string_of(c.unread), c.peer, outgoing},
                    deadline_);
      if (r) {
        ++stats_.connections;
        return;
      }
      log()->error("gate {} connection from {} lost in the hand-over: {}", g, c.peer, r.error());
    } else {
      log()->error("connection from {} for unknown listener {} closed", c.peer, c.listener);
    }
    ++stats_.connections_lost;
  }

  std::string cut_over() {
    // Stores of this worker the old one did not have: they load their own regions (a
    // store added by this binary starts empty; one an earlier worker had finds its state).
    if (n_.entities != nullptr) {
      for (const auto& e : n_.entities->list()) {
        if (stores_.count(e.id) != 0) continue;
        if (auto r = call(*n_.rt, e.handle, values{entity::upgrade_key(), "recover"}, deadline_); !r) {
          return "entity '" + e.id + "': recover: " + r.error();
        }
      }
    }
    if (n_.cluster != nullptr) {
      if (auto r = n_.open_cluster_listener(); !r) return "cluster listener: " + r.error();
    }
    for (const auto& g : n_.gates) {
      if (auto r = call(*n_.rt, gate_address(g), values{gate::handover_key(), "start"}, deadline_); !r) {
        return "gate " + g + ": start: " + r.error();
      }
    }
    stats_.stores = stores_.size();
    if (auto r = tx::send(fd_, tx::serving{}, left(deadline_)); !r) return r.error();
    return "";
  }

  node_parts& n_;
  const int fd_;
  const options o_;
  const clock::time_point deadline_;
  std::map<std::string, actor::handle_t> stores_;
  takeover_stats stats_;
};

}  // namespace

hand_over_outcome hand_over(node_parts& node, int transfer_fd, std::uint32_t generation, ms budget,
                            const options& o) {
  return old_side(node, transfer_fd, generation, budget, o).run();
}

result<takeover_stats, std::string> take_over(node_parts& node, int transfer_fd, ms budget, const options& o) {
  return new_side(node, transfer_fd, budget, o).run();
}

}  // namespace csk::upgrade
