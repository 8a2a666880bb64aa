// cppskynet-wire: a dissector for skynet cluster traffic and skynet.pack buffers.
//
//   cppskynet-wire decode --as stream --dir request|response [FILE | - | --hex HEX]
//   cppskynet-wire decode --as seri [FILE | - | --hex HEX]
//   cppskynet-wire encode --as stream --dir request|response [--hex] [FILE | -]
//   cppskynet-wire encode --as seri [--hex] [FILE | -]
//
// decode prints one JSON object per line; encode reads JSON objects (one per line,
// or a JSON array of them) and writes raw bytes, or hex with --hex.
// Malformed input: exit code 1 and one line on stderr (what, and at which byte).

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tools/wire/dissect.hpp"

namespace {

using csk::tools::json;

constexpr int exit_ok = 0;
constexpr int exit_malformed = 1;
constexpr int exit_usage = 2;

// Names, trace tags and error texts are raw bytes: print bytes that are not UTF-8
// as U+FFFD rather than fail (values carry exact bytes in "hex").
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int usage(const std::string& why) {
  std::cerr << "cppskynet-wire: " << why << "\n"
            << "usage: cppskynet-wire decode --as stream|seri [--dir request|response] [FILE|-|--hex HEX]\n"
            << "       cppskynet-wire encode --as stream|seri [--dir request|response] [--hex] [FILE|-]\n";
  return exit_usage;
}

bool read_input(const std::string& file, std::string& out) {
  if (file.empty() || file == "-") {
    out.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return true;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// JSON input: a single value, or one value per line. With `split_arrays`, a top-level
// array is a list of documents (messages); otherwise it is one document (a value list).
bool parse_json_input(const std::string& text, bool split_arrays, std::vector<json>& docs, std::string& error) {
  try {
    json whole = json::parse(text);
    if (whole.is_array() && split_arrays) {
      for (auto& d : whole) docs.push_back(std::move(d));
    } else {
      docs.push_back(std::move(whole));
    }
    return true;
  } catch (const json::parse_error&) {
    // fall through to line by line
  }
  std::istringstream lines(text);
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(lines, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      docs.push_back(json::parse(line));
    } catch (const json::parse_error& e) {
      error = "line " + std::to_string(lineno) + ": invalid JSON: " + e.what();
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("missing command");
  const std::string cmd = args[0];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    usage("help");
    return exit_ok;
  }
  std::string as = "stream";
  std::string dir = "request";
  std::string hex_in;
  bool have_hex_in = false;
  bool hex_out = false;
  std::string file;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= args.size()) return false;
      into = args[++i];
      return true;
    };
    if (a == "--as") {
      if (!value(as)) return usage("--as needs stream or seri");
    } else if (a == "--dir") {
      if (!value(dir)) return usage("--dir needs request or response");
    } else if (a == "--hex") {
      if (cmd == "decode") {
        if (!value(hex_in)) return usage("--hex needs a hex string");
        have_hex_in = true;
      } else {
        hex_out = true;
      }
    } else if (a == "-h" || a == "--help") {
      usage("help");
      return exit_ok;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return usage("unknown option " + a);
    } else {
      file = a;
    }
  }
  if (as != "stream" && as != "seri") return usage("--as must be stream or seri");
  if (dir != "request" && dir != "response") return usage("--dir must be request or response");
  const auto direction = dir == "request" ? csk::tools::direction::request : csk::tools::direction::response;

  if (cmd == "decode") {
    csk::byte_buffer bytes;
    if (have_hex_in) {
      if (!csk::from_hex(hex_in, bytes)) {
        std::cerr << "cppskynet-wire: --hex: not a hex string (odd length or non-hex digit)\n";
        return exit_malformed;
      }
    } else {
      std::string raw;
      if (!read_input(file, raw)) {
        std::cerr << "cppskynet-wire: cannot read " << file << "\n";
        return exit_usage;
      }
      bytes.assign(raw.begin(), raw.end());
    }
    if (as == "seri") {
      auto r = csk::tools::dissect_seri(bytes);
      if (!r) {
        std::cerr << "cppskynet-wire: malformed seri data at " << r.error().message() << "\n";
        return exit_malformed;
      }
      std::cout << dump(*r) << "\n";
      return exit_ok;
    }
    auto d = csk::tools::dissect_stream(bytes, direction);
    for (const auto& m : d.messages) std::cout << dump(m) << "\n";
    if (d.error) {
      std::cout.flush();
      std::cerr << "cppskynet-wire: malformed " << dir << " stream at " << d.error->message() << "\n";
      return exit_malformed;
    }
    return exit_ok;
  }

  if (cmd == "encode") {
    std::string text;
    if (!read_input(file, text)) {
      std::cerr << "cppskynet-wire: cannot read " << file << "\n";
      return exit_usage;
    }
    std::vector<json> docs;
    std::string error;
    if (!parse_json_input(text, as == "stream", docs, error)) {
      std::cerr << "cppskynet-wire: " << error << "\n";
      return exit_malformed;
    }
    csk::byte_buffer out;
    for (std::size_t i = 0; i < docs.size(); ++i) {
      auto r = as == "seri" ? csk::tools::encode_seri(docs[i], out)
                            : csk::tools::encode_message(docs[i], direction, out);
      if (!r) {
        std::cerr << "cppskynet-wire: message " << i << ": " << r.error() << "\n";
        return exit_malformed;
      }
    }
    if (hex_out) {
      std::cout << csk::to_hex(out) << "\n";
    } else {
      std::cout.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    }
    return exit_ok;
  }
  return usage("unknown command " + cmd);
}
