// cppskynet-bench: cluster RPC throughput and latency on this machine, beside a bare echo of
// the same framing over the same net layer, measured in the same run.
//
//   cppskynet-bench [--callers N] [--payload BYTES] [--seconds S] [--mode call|push]
//
// Both nodes run in this process (their own runtime and net thread each); callers are
// closed loops: each keeps one call in flight and issues the next when the answer arrives.
// call: N callers -> @echo on the other node; prints calls/s and p50/p99/p99.9 latency.
// push: one sender pushes for S seconds to a counting service; prints pushes/s delivered.
// baseline: N closed loops send frames to a net handler that echoes them (no runtime, no
// cluster codec): the floor the cluster path is compared with.

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

#include "common/actor/runtime.hpp"
#include "common/log/log.hpp"
#include "common/net/net.hpp"
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
};

void print(const result_line& r) {
  std::printf("%-28s %12.0f/s   p50 %8.1f us   p99 %8.1f us   p99.9 %8.1f us\n", r.name.c_str(), r.per_sec, r.p50,
              r.p99, r.p999);
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
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < states.size(); ++i) next(i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the measurement window
  stop.store(true);
  const auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 30s, [&] { return running.load() == 0; });
  }
  result_line r;
  r.name = name;
  r.per_sec = static_cast<double>(completed.load()) / elapsed;
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

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--callers") o.callers = std::max(1, std::atoi(v.c_str()));
    else if (k == "--payload") o.payload = static_cast<std::size_t>(std::max(0, std::atoi(v.c_str())));
    else if (k == "--seconds") o.seconds = std::max(0.1, std::atof(v.c_str()));
    else if (k == "--mode") o.mode = v;
    else {
      std::cerr << "usage: cppskynet-bench [--callers N] [--payload BYTES] [--seconds S] [--mode call|push]\n";
      return 2;
    }
  }
  csk::log_config quiet;
  quiet.level = "warn";
  csk::init_logging(quiet, "bench");
  std::printf("callers %d, payload %zu bytes, %.1f s per run, mode %s\n", o.callers, o.payload, o.seconds,
              o.mode.c_str());

  // -- baseline: bare echo over csk::net --------------------------------------------
  {
    csk::net::net server(1), client(1);
    server.start();
    client.start();
    auto listener = server.listen("127.0.0.1", 0, std::make_shared<echo_handler>(server));
    auto ch = std::make_shared<echo_client>();
    std::promise<void> up;
    const auto conn = client.connect("127.0.0.1", server.local_port(*listener), ch, {},
                                     [&](csk::net::conn_id, std::error_code) { up.set_value(); });
    up.get_future().wait();
    csk::byte_buffer frame(o.payload + 2);
    frame[0] = static_cast<std::uint8_t>(o.payload >> 8);
    frame[1] = static_cast<std::uint8_t>(o.payload);
    print(closed_loop("baseline bare echo", o.callers, o.seconds, [&](std::function<void(bool)> done) {
      ch->expect(std::move(done));
      client.send(conn, csk::bytes_view(frame));
    }));
    client.stop();
    server.stop();
  }

  // -- the cluster path -----------------------------------------------------------------
  csk::actor::runtime_options ro;
  ro.threads = 1;
  ro.call_timeout = 10s;
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

  if (o.mode == "push") {
    std::uint64_t sent = 0;
    std::uint64_t refused = 0;
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
    const auto delivered = r ? static_cast<std::uint64_t>(r->at(0).as_integer() - 1) : 0;
    std::printf("%-28s %12.0f/s   (%llu sent, %llu delivered, %llu refused while backed up)\n", "cluster pushes",
                static_cast<double>(delivered) / elapsed, static_cast<unsigned long long>(sent),
                static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(refused));
  } else {
    print(closed_loop("cluster calls (@echo)", o.callers, o.seconds, [&](std::function<void(bool)> done) {
      client.call("server", csk::wire::target::named("@echo"), args, 10s,
                  [done = std::move(done)](csk::actor::call_result r) { done(r.has_value()); });
    }));
  }
  client_net.stop();
  server_net.stop();
  client_rt.shutdown();
  server_rt.shutdown();
  return 0;
}
