// cppskynet-bench: cluster RPC throughput and latency on this machine, beside a bare echo of
// the same framing over the same net layer, measured in the same run.
//
//   cppskynet-bench [--callers N] [--payload BYTES] [--seconds S] [--mode call|push]
//                   [--rounds R] [--baseline 1|0] [--idle-spin US]
//
// Both nodes run in this process (their own runtime and net thread each); callers are
// closed loops: each keeps one call in flight and issues the next when the answer arrives.
// call: N callers -> @echo on the other node; prints calls/s and p50/p99/p99.9 latency.
// push: one sender pushes for S seconds to a counting service; prints pushes/s delivered.
// baselines (no runtime, no cluster codec: the floor the cluster path is compared with):
//   call: N closed loops send frames to a net handler that echoes them;
//   push: one thread streams frames of the cluster push's size to a net handler that
//         counts them, backing off like the sender while 16 MiB are unsent.
// Rounds: the baseline and the cluster path run alternately R times (S seconds each), so
// that both see the same machine load; each round prints its ratio, the end the medians.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <thread>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "common/actor/runtime.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
#include "common/wire/cluster_codec.hpp"
#include "common/wire/seri.hpp"
#include "services/cluster/node.hpp"
#include "services/lab/lab_services.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct options {
  int callers = 16;
  std::size_t payload = 16;
  double seconds = 3;
  std::string mode = "call";
  bool baseline = true;
};

struct latencies {
  std::mutex mu;
  std::vector<double> us;  // microseconds
  void add(std::vector<double>& local) {
    std::lock_guard lock(mu);
    us.insert(us.end(), local.begin(), local.end());
  }
  double pct(double p) {
    if (us.empty()) return 0;
    std::sort(us.begin(), us.end());
    return us[std::min(us.size() - 1, static_cast<std::size_t>(p * static_cast<double>(us.size())))];
  }
};

struct result_line {
  std::string name;
  double per_sec = 0;
  double p50 = 0, p99 = 0, p999 = 0;
  double cpu_us = 0;  // CPU time of the whole process (every thread) per operation
};

void print(const result_line& r) {
  std::printf("%-28s %12.0f/s   p50 %8.1f us   p99 %8.1f us   p99.9 %8.1f us   cpu %5.2f us/op\n", r.name.c_str(),
              r.per_sec, r.p50, r.p99, r.p999, r.cpu_us);
}

/// User + system CPU time of this process so far, in microseconds. Divided by the
/// operations done, it is a cost that other processes' load barely changes.
double process_cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto us = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec); };
  return us(u.ru_utime) + us(u.ru_stime);
}

/// Closed-loop callers: `issue(done)` starts one operation and calls done() when it ends.
template <class Issue>
result_line closed_loop(const std::string& name, int callers, double seconds, Issue issue) {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<int> running{callers};
  std::mutex mu;
  std::condition_variable cv;
  latencies lat;
  struct loop_state {
    std::vector<double> local;
    clock_type::time_point t0;
  };
  std::vector<loop_state> states(static_cast<std::size_t>(callers));
  std::function<void(std::size_t)> next = [&](std::size_t i) {
    if (stop.load(std::memory_order_relaxed)) {
      lat.add(states[i].local);
      if (running.fetch_sub(1) == 1) {
        std::lock_guard lock(mu);
        cv.notify_all();
      }
      return;
    }
    states[i].t0 = clock_type::now();
    issue([&, i](bool ok) {
      const auto dt = std::chrono::duration<double, std::micro>(clock_type::now() - states[i].t0).count();
      if (ok) {
        states[i].local.push_back(dt);
        completed.fetch_add(1, std::memory_order_relaxed);
      }
      next(i);
    });
  };
  const double cpu0 = process_cpu_us();
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < states.size(); ++i) next(i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the measurement window
  stop.store(true);
  const auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 30s, [&] { return running.load() == 0; });
  }
  const double cpu = process_cpu_us() - cpu0;
  result_line r;
  r.name = name;
  r.per_sec = static_cast<double>(completed.load()) / elapsed;
  r.cpu_us = completed.load() ? cpu / static_cast<double>(completed.load()) : 0;
  r.p50 = lat.pct(0.5);
  r.p99 = lat.pct(0.99);
  r.p999 = lat.pct(0.999);
  return r;
}

/// The baseline server: echoes every frame back with the same framing.
class echo_handler : public csk::net::handler {
 public:
  explicit echo_handler(csk::net::net& n) : net_(n) {}
  void on_message(csk::net::conn_id id, csk::bytes_view m) override {
    csk::byte_buffer out;
    out.reserve(m.size() + 2);
    out.push_back(static_cast<std::uint8_t>(m.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(m.size()));
    out.insert(out.end(), m.begin(), m.end());
    net_.send(id, std::move(out));
  }

 private:
  csk::net::net& net_;
};

/// The baseline client: answers arrive in order, so a FIFO of completions matches them.
class echo_client : public csk::net::handler {
 public:
  void on_message(csk::net::conn_id, csk::bytes_view) override {
    std::function<void(bool)> done;
    {
      std::lock_guard lock(mu_);
      done = std::move(waiting_.front());
      waiting_.pop_front();
    }
    done(true);
  }
  void expect(std::function<void(bool)> done) {
    std::lock_guard lock(mu_);
    waiting_.push_back(std::move(done));
  }

 private:
  std::mutex mu_;
  std::deque<std::function<void(bool)>> waiting_;
};

/// The push baseline's server: counts frames.
class count_handler : public csk::net::handler {
 public:
  void on_message(csk::net::conn_id, csk::bytes_view) override { count.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<std::uint64_t> count{0};
};

/// One thread streams frames for `seconds` (send() false = backed up: yield and retry),
/// then waits until the server counted them all. Delivered per second.
template <class Send>
result_line stream_pushes(const std::string& name, double seconds, count_handler& server, Send send) {
  const std::uint64_t before = server.count.load();
  std::uint64_t sent = 0;
  const double cpu0 = process_cpu_us();
  const auto start = clock_type::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  while (clock_type::now() < until) {
    for (int k = 0; k < 256; ++k) {
      if (send()) {
        ++sent;
      } else {
        std::this_thread::yield();
      }
    }
  }
  const auto give_up = clock_type::now() + 60s;
  while (server.count.load() - before < sent && clock_type::now() < give_up) std::this_thread::sleep_for(1ms);
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  result_line r;
  r.name = name;
  const auto delivered = server.count.load() - before;
  r.per_sec = static_cast<double>(delivered) / elapsed;
  r.cpu_us = delivered ? (process_cpu_us() - cpu0) / static_cast<double>(delivered) : 0;
  std::printf("%-28s %12.0f/s   (%llu sent)   cpu %5.2f us/op\n", name.c_str(), r.per_sec,
              static_cast<unsigned long long>(sent), r.cpu_us);
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  int rounds = 1;
  long idle_spin_us = -1;  // -1: the runtime's default
  bool profile = true;     // the runtime's default
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--callers") o.callers = std::max(1, std::atoi(v.c_str()));
    else if (k == "--payload") o.payload = static_cast<std::size_t>(std::max(0, std::atoi(v.c_str())));
    else if (k == "--seconds") o.seconds = std::max(0.1, std::atof(v.c_str()));
    else if (k == "--mode") o.mode = v;
    else if (k == "--baseline") o.baseline = v != "0" && v != "off";
    else if (k == "--rounds") rounds = std::max(1, std::atoi(v.c_str()));
    else if (k == "--idle-spin") idle_spin_us = std::max(0L, std::atol(v.c_str()));
    else if (k == "--profile") profile = v != "0" && v != "off";
    else {
      std::cerr << "usage: cppskynet-bench [--callers N] [--payload BYTES] [--seconds S] [--mode call|push] "
                   "[--rounds R] [--baseline 1|0] [--idle-spin US] [--profile 1|0]\n";
      return 2;
    }
  }
  const bool push = o.mode == "push";
  csk::log_config quiet;
  quiet.level = "error";  // the push run overloads @counter on purpose: no warnings
  csk::init_logging(quiet, "bench");
  std::printf("callers %d, payload %zu bytes, %.1f s per run, mode %s, %d round(s), profile %s\n", o.callers, o.payload,
              o.seconds, o.mode.c_str(), rounds, profile ? "on" : "off");

  // -- baseline: bare echo (or bare one-way stream) over csk::net -----------------------
  csk::net::net bserver(1), bclient(1);
  bserver.start();
  bclient.start();
  auto counter_h = std::make_shared<count_handler>();
  std::shared_ptr<csk::net::handler> server_h;
  if (push) {
    server_h = counter_h;
  } else {
    server_h = std::make_shared<echo_handler>(bserver);
  }
  auto listener = bserver.listen("127.0.0.1", 0, server_h);
  auto ch = std::make_shared<echo_client>();
  std::promise<void> up;
  const auto bconn = bclient.connect("127.0.0.1", bserver.local_port(*listener), ch, {},
                                     [&](csk::net::conn_id, std::error_code) { up.set_value(); });
  up.get_future().wait();

  // -- the cluster path -------------------------------------------------------------------
  csk::actor::runtime_options ro;
  ro.threads = 1;
  ro.call_timeout = 10s;
  if (idle_spin_us >= 0) ro.idle_spin = std::chrono::microseconds(idle_spin_us);
  ro.profile = profile;  // per-service CPU time (runtime.profile; on in a node by default)
  csk::actor::runtime server_rt(ro), client_rt(ro);
  csk::lab::spawn_lab_services(server_rt);
  csk::net::net server_net(1), client_net(1);
  csk::cluster::node_options so;
  so.self = "server";
  so.listen = csk::cluster::endpoint{"127.0.0.1", 0};
  csk::cluster::node server(server_rt, server_net, so);
  csk::cluster::node client(client_rt, client_net, csk::cluster::node_options{});
  server_rt.start();
  client_rt.start();
  server_net.start();
  client_net.start();
  const auto port = server.open();
  if (!port) {
    std::cerr << port.error() << "\n";
    return 1;
  }
  csk::cluster_names table;
  table.nodes["server"] = csk::cluster_node_address{"127.0.0.1", *port};
  client.reload(table);
  const csk::actor::values args{std::string(o.payload, 'x')};

  // The push frame as the sender writes it (same size for the baseline stream).
  csk::byte_buffer push_frame;
  {
    auto payload = csk::seri::pack(args);
    if (!payload || !csk::wire::encode_request(csk::wire::target::named("@counter"), 0, true, *payload, push_frame)) {
      std::cerr << "cannot encode the push frame\n";
      return 1;
    }
  }
  csk::byte_buffer echo_frame(o.payload + 2);
  echo_frame[0] = static_cast<std::uint8_t>(o.payload >> 8);
  echo_frame[1] = static_cast<std::uint8_t>(o.payload);

  std::vector<double> base_rates, cluster_rates, ratios, p50_ratios, base_cpu, cluster_cpu;
  std::int64_t counted_before = 0;  // @counter's count before this round's pushes
  for (int round = 0; round < rounds; ++round) {
    result_line b, c;
    if (o.baseline) {
      if (push) {
        std::uint64_t n = 0;  // looks at the backlog every 256 frames: the floor, not the sender's rule
        b = stream_pushes("baseline bare stream", o.seconds, *counter_h, [&] {
          if ((n++ & 255) == 0 && bclient.queued_bytes(bconn) > (16u << 20)) return false;
          return bclient.send(bconn, csk::bytes_view(push_frame));
        });
      } else {
        b = closed_loop("baseline bare echo", o.callers, o.seconds, [&](std::function<void(bool)> done) {
          ch->expect(std::move(done));
          bclient.send(bconn, csk::bytes_view(echo_frame));
        });
        print(b);
      }
    }
    if (push) {
      std::uint64_t sent = 0;
      std::uint64_t refused = 0;
      const double cpu0 = process_cpu_us();
      const auto start = clock_type::now();
      const auto until = start + std::chrono::duration<double>(o.seconds);
      while (clock_type::now() < until) {
        for (int k = 0; k < 256; ++k) {
          if (client.send("server", csk::wire::target::named("@counter"), args)) {
            ++sent;
          } else {
            ++refused;  // the connection is backed up: let it drain
            std::this_thread::yield();
          }
        }
      }
      auto r = client.call("server", csk::wire::target::named("@counter"), {}, 60s).get();  // behind every push
      const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
      const std::int64_t counted = r ? r->at(0).as_integer() : 0;
      const auto delivered = static_cast<std::uint64_t>(std::max<std::int64_t>(0, counted - 1 - counted_before));
      counted_before = counted;
      c.name = "cluster pushes";
      c.per_sec = static_cast<double>(delivered) / elapsed;
      c.cpu_us = delivered ? (process_cpu_us() - cpu0) / static_cast<double>(delivered) : 0;
      std::printf("%-28s %12.0f/s   (%llu sent, %llu delivered, %llu refused while backed up)   cpu %5.2f us/op\n",
                  c.name.c_str(), c.per_sec, static_cast<unsigned long long>(sent),
                  static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(refused), c.cpu_us);
    } else {
      c = closed_loop("cluster calls (@echo)", o.callers, o.seconds, [&](std::function<void(bool)> done) {
        client.call("server", csk::wire::target::named("@echo"), args, 10s,
                    [done = std::move(done)](csk::actor::call_result r) { done(r.has_value()); });
      });
      print(c);
    }
    cluster_rates.push_back(c.per_sec);
    cluster_cpu.push_back(c.cpu_us);
    if (o.baseline) base_cpu.push_back(b.cpu_us);
    if (o.baseline && b.per_sec > 0) {
      base_rates.push_back(b.per_sec);
      ratios.push_back(c.per_sec / b.per_sec);
      if (!push && b.p50 > 0) p50_ratios.push_back(c.p50 / b.p50);
      if (push) {
        std::printf("  round %d: rate ratio %.3f\n", round + 1, ratios.back());
      } else {
        std::printf("  round %d: rate ratio %.3f, p50 ratio %.2f\n", round + 1, ratios.back(), p50_ratios.back());
      }
    }
  }
  if (rounds > 1) {
    std::printf("median of %d rounds: cluster %.0f/s (cpu %.2f us/op)", rounds, median(cluster_rates),
                median(cluster_cpu));
    if (!ratios.empty()) {
      std::printf(", baseline %.0f/s (cpu %.2f us/op), rate ratio %.3f", median(base_rates), median(base_cpu),
                  median(ratios));
      if (!p50_ratios.empty()) std::printf(", p50 ratio %.2f", median(p50_ratios));
    }
    std::printf("\n");
  }
  client_net.stop();
  server_net.stop();
  client_rt.shutdown();
  server_rt.shutdown();
  bclient.stop();
  bserver.stop();
  return 0;
}
