#include "common/channel/fd_channel.hpp"

#include "common/channel/record_io.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <system_error>

namespace csk::channel {
namespace {

static_assert(max_fds_per_record == detail::record_max_fds);

using clock = std::chrono::steady_clock;

std::string errno_text(int err) { return std::generic_category().message(err); }

recv_error failed(std::string text) { return recv_error{recv_error::kind::failed, std::move(text)}; }

// Waits for POLLIN until `deadline` (nullopt: forever). False on timeout.
result<bool, recv_error> wait_readable(int sock, std::optional<clock::time_point> deadline) {
  for (;;) {
    int ms = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - clock::now());
      ms = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, std::min<std::chrono::milliseconds::rep>(left.count(), 1 << 30)));
    }
    pollfd p{sock, POLLIN, 0};
    const int n = ::poll(&p, 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(failed("poll: " + errno_text(errno)));
    }
    if (n == 0) {
      if (!deadline || clock::now() >= *deadline) return false;
      continue;
    }
    return true;  // POLLIN, or POLLHUP/POLLERR: recvmsg tells which
  }
}

}  // namespace

result<std::pair<unique_fd, unique_fd>, std::string> make_socket_pair() {
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return unexpected("socketpair: " + errno_text(errno));
  }
  return std::pair<unique_fd, unique_fd>(unique_fd(sv[0]), unique_fd(sv[1]));
}

result<void, std::string> send_message(int sock, const message& m, std::span<const int> fds) {
  const std::string_view name = name_of(kind_of(m));
  if (std::string why = check(m); !why.empty()) return unexpected("not sending " + std::string(name) + ": " + why);
  if (fds.size() != fds_announced(m)) {
    return unexpected("not sending " + std::string(name) + ": it announces " + std::to_string(fds_announced(m)) +
                      " fds, " + std::to_string(fds.size()) + " given");
  }
  const byte_buffer bytes = encode(m);
  if (bytes.size() > max_record) {
    return unexpected("not sending " + std::string(name) + ": " + std::to_string(bytes.size()) +
                      " bytes (at most " + std::to_string(max_record) + ")");
  }
  const int err = detail::send_record(sock, bytes, fds, 0);
  if (err == 0) return {};
  if (err == EAGAIN || err == EWOULDBLOCK) return unexpected("sending " + std::string(name) + ": channel full");
  return unexpected("sending " + std::string(name) + ": " + errno_text(err));
}

result<received, recv_error> recv_message(int sock, std::chrono::milliseconds timeout) {
  std::optional<clock::time_point> deadline;
  if (timeout.count() >= 0) deadline = clock::now() + timeout;
  byte_buffer buf(max_record);
  for (;;) {
    auto ready = wait_readable(sock, deadline);
    if (!ready) return unexpected(ready.error());
    if (!*ready) return unexpected(recv_error{recv_error::kind::timeout, "no message in time"});

    received r;  // owns every fd that came, whatever else is wrong with the record
    auto rec = detail::read_record(sock, buf, max_fds_per_record, r.fds);
    if (!rec) {
      if (rec.error() == EAGAIN || rec.error() == EWOULDBLOCK) continue;
      if (rec.error() == ECONNRESET) return unexpected(recv_error{recv_error::kind::closed, "peer reset the channel"});
      return unexpected(failed("recvmsg: " + errno_text(rec.error())));
    }
    if (rec->size == 0) return unexpected(recv_error{recv_error::kind::closed, "peer closed the channel"});
    if (rec->truncated) return unexpected(failed("record truncated (over " + std::to_string(max_record) + " bytes)"));
    if (rec->control_truncated) return unexpected(failed("control data truncated: fds were lost"));
    if (rec->foreign) return unexpected(failed("unexpected control message (not SCM_RIGHTS)"));
    if (rec->scm_blocks > 1) return unexpected(failed("more than one SCM_RIGHTS block in one record"));

    auto m = decode(bytes_view(buf.data(), rec->size));
    if (!m) return unexpected(failed(m.error()));
    const std::size_t announced = fds_announced(*m);
    if (r.fds.size() != announced) {
      return unexpected(failed(std::string(name_of(kind_of(*m))) + " announces " + std::to_string(announced) +
                               " fds, " + std::to_string(r.fds.size()) + " came"));
    }
    r.msg = std::move(*m);
    return r;
  }
}

result<void, std::string> send_listeners(int sock, std::span<const std::string> names, std::span<const int> fds) {
  if (names.size() != fds.size()) return unexpected(std::string("send_listeners: names and fds differ in number"));
  const std::size_t batches = std::max<std::size_t>(1, (fds.size() + max_fds_per_record - 1) / max_fds_per_record);
  for (std::size_t b = 0; b < batches; ++b) {
    const std::size_t first = b * max_fds_per_record;
    const std::size_t count = std::min(max_fds_per_record, fds.size() - first);
    listeners l;
    l.names.assign(names.begin() + static_cast<std::ptrdiff_t>(first),
                   names.begin() + static_cast<std::ptrdiff_t>(first + count));
    l.batch = static_cast<std::uint32_t>(b);
    l.batches = static_cast<std::uint32_t>(batches);
    if (auto r = send_message(sock, l, fds.subspan(first, count)); !r) return r;
  }
  return {};
}

result<std::vector<named_fd>, recv_error> recv_listeners(int sock, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  std::vector<named_fd> out;
  std::set<std::string> seen;
  std::uint32_t batches = 0;
  for (std::uint32_t next = 0; batches == 0 || next < batches; ++next) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    auto r = recv_message(sock, std::max(left, std::chrono::milliseconds(0)));
    if (!r) return unexpected(r.error());
    auto* l = std::get_if<listeners>(&r->msg);
    if (l == nullptr) {
      return unexpected(failed("expected listeners, got " + std::string(name_of(kind_of(r->msg)))));
    }
    if (l->batch != next || (batches != 0 && l->batches != batches)) {
      return unexpected(failed("listeners batch " + std::to_string(l->batch) + " of " + std::to_string(l->batches) +
                               " out of order (expected batch " + std::to_string(next) + ")"));
    }
    batches = l->batches;
    for (std::size_t i = 0; i < l->names.size(); ++i) {
      if (!seen.insert(l->names[i]).second) return unexpected(failed("listener " + l->names[i] + " sent twice"));
      out.push_back(named_fd{std::move(l->names[i]), std::move(r->fds[i])});
    }
  }
  return out;
}

}  // namespace csk::channel
