// Tests for include/hyplora/io/atomic_file.hpp: atomic replacement, cleanup on failure, read_file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <hyplora/io/atomic_file.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace io_test_atomic_file {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace fs = std::filesystem;

namespace {

/// A fresh empty directory, removed with its contents at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hyplora_io_atomic_" + std::to_string(rd()) + "_" +
                                        std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    return out;
  }
};

std::vector<std::uint8_t> as_bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("write_file_atomic creates, replaces and read_file reads back, leaving no temp files") {
  TempDir d;
  const fs::path p = d.path / "f.bin";
  hyplora::io::write_file_atomic(p, std::string_view("first"));
  CHECK(hyplora::io::read_file(p) == as_bytes("first"));
  hyplora::io::write_file_atomic(p, as_bytes("second, longer"));
  CHECK(hyplora::io::read_file(p) == as_bytes("second, longer"));
  hyplora::io::write_file_atomic(p, std::string_view(""));
  CHECK(hyplora::io::read_file(p).empty());
  CHECK(d.entries() == std::vector<std::string>{"f.bin"});
}

TEST_CASE("read_file handles files larger than its internal buffer and every byte value") {
  TempDir d;
  const fs::path p = d.path / "big.bin";
  std::vector<std::uint8_t> data(200'003);
  std::mt19937 rng(7);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  hyplora::io::write_file_atomic(p, data);
  CHECK(hyplora::io::read_file(p) == data);
  CHECK(fs::file_size(p) == data.size());
}

TEST_CASE("the writer callback streams pieces and counts them") {
  TempDir d;
  const fs::path p = d.path / "cb.txt";
  std::uint64_t seen = 0;
  hyplora::io::write_file_atomic(p, [&](hyplora::io::FileSink& s) {
    s.write("abc");
    s.write(std::string(70'000, 'x'));
    s.write("", 0);
    seen = s.written();
  });
  CHECK(seen == 70'003);
  const auto back = hyplora::io::read_file(p);
  REQUIRE(back.size() == 70'003);
  CHECK(std::string(back.begin(), back.begin() + 4) == "abcx");
}

TEST_CASE("a writer that throws midway leaves the old file intact and removes the temp file") {
  TempDir d;
  const fs::path p = d.path / "keep.txt";
  hyplora::io::write_file_atomic(p, std::string_view("old contents"));
  bool wrote_some = false;
  CHECK_THROWS_AS(hyplora::io::write_file_atomic(p,
                                                 [&](hyplora::io::FileSink& s) {
                                                   s.write(std::string(100'000, 'n'));
                                                   wrote_some = s.written() == 100'000;
                                                   throw std::logic_error("writer failed");
                                                 }),
                  std::logic_error);  // the writer's own exception, unchanged
  CHECK(wrote_some);
  CHECK(hyplora::io::read_file(p) == as_bytes("old contents"));
  CHECK(d.entries() == std::vector<std::string>{"keep.txt"});

  // Same when the target did not exist: nothing is left behind.
  const fs::path q = d.path / "new.txt";
  CHECK_THROWS_AS(hyplora::io::write_file_atomic(q, [](hyplora::io::FileSink& s) {
    s.write("partial");
    throw std::runtime_error("boom");
  }), std::runtime_error);
  CHECK_FALSE(fs::exists(q));
  CHECK(d.entries() == std::vector<std::string>{"keep.txt"});
}

TEST_CASE("system failures throw io_error naming the path and the system's reason") {
  TempDir d;
  const fs::path missing_dir = d.path / "no" / "such" / "dir" / "f.bin";
  try {
    hyplora::io::write_file_atomic(missing_dir, std::string_view("x"));
    FAIL("no throw");
  } catch (const hyplora::io_error& e) {
    const std::string m = e.what();
    CHECK(m.find(missing_dir.string()) != std::string::npos);
    CHECK(m.find("No such file") != std::string::npos);
  }
  // Renaming a file over a non-empty directory fails after the temp file was written.
  fs::create_directories(d.path / "occupied" / "child");
  CHECK_THROWS_AS(hyplora::io::write_file_atomic(d.path / "occupied", std::string_view("x")),
                  hyplora::io_error);
  CHECK(fs::is_directory(d.path / "occupied" / "child"));
  CHECK(d.entries() == std::vector<std::string>{"occupied"});

  CHECK_THROWS_AS(hyplora::io::write_file_atomic(fs::path(), std::string_view("x")),
                  hyplora::io_error);

  try {
    (void)hyplora::io::read_file(d.path / "absent.bin");
    FAIL("no throw");
  } catch (const hyplora::io_error& e) {
    const std::string m = e.what();
    CHECK(m.find("absent.bin") != std::string::npos);
    CHECK(m.find("No such file") != std::string::npos);
  }
  CHECK_THROWS_AS((void)hyplora::io::read_file(d.path), hyplora::io_error);  // a directory
}

#if defined(__unix__) || defined(__APPLE__)
// Regression (hardening): a writer killed by SIGKILL cannot remove its temporary file; before the
// fix every kill left one ".<name>.tmp.<pid>.<n>" behind for good. The next write now removes
// those of dead processes, and keeps its own process's and other live processes' files.
TEST_CASE("write_file_atomic removes temporaries left by killed writers, not live ones") {
  TempDir d;
  const fs::path target = d.path / "f.bin";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);  // reaped: its pid names no process now
  const fs::path dead = d.path / (".f.bin.tmp." + std::to_string(child) + ".0");
  const fs::path mine = d.path / (".f.bin.tmp." + std::to_string(::getpid()) + ".999999");
  const fs::path other = d.path / ".g.bin.tmp.1.0";  // another file's temporary: not ours to touch
  for (const fs::path& p : {dead, mine, other}) std::ofstream(p) << "partial";
  hyplora::io::write_file_atomic(target, as_bytes("v1"));
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(mine));
  CHECK(fs::exists(other));
  CHECK(hyplora::io::read_file(target) == as_bytes("v1"));
}
#endif

}  // namespace io_test_atomic_file
