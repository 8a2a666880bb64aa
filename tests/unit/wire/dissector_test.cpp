// Drives the real cppskynet-wire binary over every golden vector: its JSON must
// carry each vector's meaning, and encoding its own output must give the bytes back.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/support/vectors.hpp"

namespace csk::test {
namespace {

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class DissectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/csk-wire-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write_temp(const std::string& name, const void* data, std::size_t n) {
    const std::string path = dir_ + "/" + name;
    std::ofstream f(path, std::ios::binary);
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    return path;
  }

  // Runs the tool with `args` (shell words, already safe), stdin from `in_file` if given.
  run_result run(const std::string& args, const std::string& in_file = "") {
    const std::string err_path = dir_ + "/stderr";
    std::string cmd = std::string(CSK_WIRE_TOOL) + " " + args + " 2>" + err_path;
    if (!in_file.empty()) cmd += " <" + in_file;
    run_result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream e(err_path);
    std::stringstream ss;
    ss << e.rdbuf();
    r.err = ss.str();
    return r;
  }

  std::vector<json> lines(const std::string& out) {
    std::vector<json> docs;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) docs.push_back(json::parse(line));
    }
    return docs;
  }

  // Every field of the vector's frame (but the raw header bytes) equals ours.
  void expect_frames(const json& expected, const std::vector<json>& messages, const std::string& ctx) {
    std::vector<json> frames;
    for (const auto& m : messages) {
      for (const auto& f : m.at("frames")) frames.push_back(f);
    }
    std::sort(frames.begin(), frames.end(),
              [](const json& a, const json& b) { return a["offset"].get<std::uint64_t>() < b["offset"].get<std::uint64_t>(); });
    ASSERT_EQ(frames.size(), expected.size()) << ctx;
    for (std::size_t i = 0; i < frames.size(); ++i) {
      for (const auto& [k, v] : expected[i].items()) {
        if (k == "header_hex") continue;
        ASSERT_TRUE(frames[i].contains(k)) << ctx << " frame " << i << " lacks " << k;
        EXPECT_EQ(frames[i][k], v) << ctx << " frame " << i << " field " << k;
      }
    }
  }

  std::string dir_;
};

std::string file_of(const vector_entry& v) {
  return v.raw.contains("bin") && v.raw["bin"].is_string() ? interop_path(v.raw["bin"].get<std::string>()) : "";
}

TEST_F(DissectorTest, DecodesAndReencodesEveryClusterVector) {
  std::size_t count = 0;
  for (const char* file : {"requests.jsonl", "responses.jsonl"}) {
    const bool requests = std::string(file) == "requests.jsonl";
    const std::string dir = requests ? "request" : "response";
    for (const auto& v : load_vectors(file)) {
      SCOPED_TRACE(v.name);
      std::string input = file_of(v);
      if (input.empty()) input = write_temp("in.bin", v.bytes.data(), v.bytes.size());
      const run_result r = run("decode --as stream --dir " + dir + " " + input);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_TRUE(r.err.empty()) << r.err;
      const auto messages = lines(r.out);
      ASSERT_EQ(messages.size(), 1u);
      const json& m = messages[0];
      expect_frames(v.meaning.at("frames"), messages, v.name);
      for (const char* key : {"session", "push", "name", "address", "payload_len", "payload_hex", "ok", "error_text",
                              "multipart_total_len"}) {
        if (v.meaning.contains(key)) {
          EXPECT_EQ(m.value(key, json()), v.meaning[key]) << key;
        }
      }
      if (v.meaning.contains("values") && m.value("ok", true)) {
        const std::string diff = match_values(v.meaning["values"], m.at("values"));
        EXPECT_TRUE(diff.empty()) << diff;
      }
      // Our own output, encoded, gives the captured bytes back.
      const std::string json_path = write_temp("msg.json", r.out.data(), r.out.size());
      const run_result enc = run("encode --as stream --dir " + dir + " --hex " + json_path);
      ASSERT_EQ(enc.exit_code, 0) << enc.err;
      EXPECT_EQ(enc.out, to_hex(v.bytes) + "\n");
      ++count;
    }
  }
  EXPECT_EQ(count, 138u);
}

TEST_F(DissectorTest, DecodesAndReencodesEverySeriVector) {
  std::size_t count = 0;
  for (const auto& v : load_vectors("seri.jsonl")) {
    SCOPED_TRACE(v.name);
    std::string input = file_of(v);
    run_result r;
    if (input.empty() && !v.bytes.empty()) {
      r = run("decode --as seri --hex " + to_hex(v.bytes));
    } else {
      if (input.empty()) input = write_temp("in.bin", v.bytes.data(), v.bytes.size());
      r = run("decode --as seri " + input);
    }
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto docs = lines(r.out);
    ASSERT_EQ(docs.size(), 1u);
    const std::string diff = match_values(v.meaning.at("values"), docs[0].at("values"));
    EXPECT_TRUE(diff.empty()) << diff;
    // Vectors give values in wire order, so encoding the meaning itself is byte-exact.
    const std::string meaning = json{{"values", v.meaning["values"]}}.dump();
    const run_result enc = run("encode --as seri --hex " + write_temp("m.json", meaning.data(), meaning.size()));
    ASSERT_EQ(enc.exit_code, 0) << enc.err;
    EXPECT_EQ(enc.out, to_hex(v.bytes) + "\n");
    ++count;
  }
  EXPECT_EQ(count, 62u);
}

TEST_F(DissectorTest, RejectsWhatSkynetRejectsWithOneLineNamingTheByte) {
  std::size_t count = 0;
  for (const auto& v : load_vectors("seri_reject.jsonl")) {
    if (v.meaning.at("op") != "unpack") continue;
    SCOPED_TRACE(v.name);
    const std::string input = write_temp("in.bin", v.bytes.data(), v.bytes.size());
    const run_result r = run("decode --as seri " + input);
    if (v.meaning.at("accepted").get<bool>()) {
      EXPECT_EQ(r.exit_code, 0) << r.err;
      const auto docs = lines(r.out);
      ASSERT_EQ(docs.size(), 1u);
      const std::string diff = match_values(v.meaning.at("values"), docs[0].at("values"));
      EXPECT_TRUE(diff.empty()) << diff;
    } else {
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find("byte "), std::string::npos) << r.err;
      std::string want = v.meaning.at("error").get<std::string>();
      want = want.substr(0, want.find(" (line:"));
      EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
    }
    ++count;
  }
  EXPECT_EQ(count, 32u);
}

TEST_F(DissectorTest, DecodesEveryCapturedStream) {
  for (const auto& v : load_vectors("streams.jsonl")) {
    SCOPED_TRACE(v.name);
    std::string input = file_of(v);
    if (input.empty()) input = write_temp("in.bin", v.bytes.data(), v.bytes.size());
    const run_result r = run("decode --as stream --dir " + v.direction + " " + input);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto messages = lines(r.out);
    ASSERT_FALSE(messages.empty());
    expect_frames(v.meaning.at("frames"), messages, v.name);
  }
}

TEST_F(DissectorTest, BehaviourRowsDecodeOrFailAsClassified) {
  const std::map<std::string, int> malformed = {
      {"rx_bad_request_type_0x05", 1}, {"rx_zero_length_frame", 1}, {"rx_truncated_numeric_request", 1},
      {"rx_truncated_name_request", 1}, {"rx_orphan_multipart_end", 1}, {"rx_multipart_total_mismatch", 1},
      {"rx_multipart_numeric_header_wrong_size", 1}, {"rx_call_with_invalid_seri_payload", 1},
      {"tx_short_frame", 1}, {"tx_unknown_type", 1}, {"tx_bad_seri_response", 1},
      {"tx_multi_size_mismatch", 0},  // decodes: an error response (our deviation from skynet)
  };
  std::size_t count = 0;
  for (const auto& v : load_vectors("behaviour.jsonl")) {
    if (v.bytes.empty()) continue;
    SCOPED_TRACE(v.name);
    const std::string dir = v.name.rfind("rx_", 0) == 0 ? "request" : "response";
    std::string input = file_of(v);
    if (input.empty()) input = write_temp("in.bin", v.bytes.data(), v.bytes.size());
    const run_result r = run("decode --as stream --dir " + dir + " " + input);
    auto it = malformed.find(v.name);
    const int want = it == malformed.end() ? 0 : it->second;
    EXPECT_EQ(r.exit_code, want) << r.err;
    if (want == 1) {
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_NE(r.err.find("byte "), std::string::npos) << r.err;
    }
    ++count;
  }
  EXPECT_EQ(count, 39u);
}

TEST_F(DissectorTest, HexInputAndUsageErrors) {
  const run_result ok = run("decode --as stream --dir request --hex 00138005406563686f010000002c68656c6c6f0a2a");
  ASSERT_EQ(ok.exit_code, 0);
  const auto m = lines(ok.out);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0]["name"], "@echo");
  EXPECT_EQ(m[0]["values"][1]["v"], "42");

  const run_result truncated = run("decode --as stream --dir request --hex 0013800540");
  EXPECT_EQ(truncated.exit_code, 1);
  EXPECT_NE(truncated.err.find("byte 0: truncated frame"), std::string::npos) << truncated.err;

  const run_result badhex = run("decode --as seri --hex 0g");
  EXPECT_EQ(badhex.exit_code, 1);
  const run_result usage = run("frobnicate");
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(run("--help").exit_code, 0);

  // Error texts are raw bytes; bytes that are not UTF-8 must not break the JSON output.
  const run_result latin1 = run("decode --as stream --dir response --hex 00060100000000ff");
  EXPECT_EQ(latin1.exit_code, 0) << latin1.err;
  ASSERT_EQ(lines(latin1.out).size(), 1u);
  EXPECT_FALSE(lines(latin1.out)[0]["ok"].get<bool>());

  // A bare JSON array is one list of values for seri.
  const std::string bare = "[{\"t\":\"int\",\"v\":\"1\"},{\"t\":\"str\",\"text\":\"hi\"}]";
  const run_result seri = run("encode --as seri --hex " + write_temp("bare.json", bare.data(), bare.size()));
  EXPECT_EQ(seri.exit_code, 0) << seri.err;
  EXPECT_EQ(seri.out, "0a01146869\n");

  const std::string bad_json = "{\"values\":[{\"t\":\"int\",\"v\":\"12x\"}]}";
  const run_result enc = run("encode --as seri --hex " + write_temp("bad.json", bad_json.data(), bad_json.size()));
  EXPECT_EQ(enc.exit_code, 1);
  EXPECT_NE(enc.err.find("values[0]"), std::string::npos) << enc.err;
}

}  // namespace
}  // namespace csk::test
