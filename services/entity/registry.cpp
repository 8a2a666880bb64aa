#include "services/entity/registry.hpp"

#include <map>
#include <mutex>
#include <stdexcept>

#include "common/base/random_key.hpp"
#include "services/entity/store.hpp"

namespace csk::entity {
namespace {

struct registry_state {
  std::mutex mu;
  std::map<std::string, registered_type, std::less<>> types;
};

registry_state& reg() {
  static registry_state r;
  return r;
}

}  // namespace

void add_type(registered_type t) {
  validate(t.desc);
  auto& r = reg();
  std::lock_guard lock(r.mu);
  auto it = r.types.find(t.desc.name);
  if (it == r.types.end()) {
    const std::string name = t.desc.name;
    r.types.emplace(name, std::move(t));
    return;
  }
  const auto& have = it->second;
  if (have.cpp_type != t.cpp_type || have.key_type != t.key_type) {
    throw std::invalid_argument("entity type name '" + t.desc.name + "' is already registered for another C++ type");
  }
  if (have.desc.version != t.desc.version || have.desc.min_version != t.desc.min_version) {
    throw std::invalid_argument("entity type '" + t.desc.name + "' is already registered with versions " +
                                std::to_string(have.desc.min_version) + ".." + std::to_string(have.desc.version));
  }
}

std::optional<type_desc> find_type(std::string_view name) {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  auto it = r.types.find(name);
  if (it == r.types.end()) return std::nullopt;
  return it->second.desc;
}

std::vector<type_desc> registered_types() {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  std::vector<type_desc> out;
  out.reserve(r.types.size());
  for (const auto& [n, t] : r.types) out.push_back(t.desc);
  return out;
}

const std::string& upgrade_key() {
  static const std::string key = random_key("__entity_upgrade:");
  return key;
}

std::string service_type_name(std::string_view entity_type) { return "entity:" + std::string(entity_type); }

void install_service_types(actor::runtime& rt) {
  std::vector<std::pair<std::string, std::function<std::unique_ptr<actor::service>()>>> todo;
  {
    auto& r = reg();
    std::lock_guard lock(r.mu);
    for (const auto& [n, t] : r.types) todo.emplace_back(service_type_name(n), t.make_service);
  }
  for (auto& [n, f] : todo) rt.register_type(n, std::move(f));
}

}  // namespace csk::entity
