// Crash safety of checkpoints: a child process saves checkpoints in a loop and the parent kills it
// with SIGKILL at random moments. After every kill the file at the path must load intact and equal
// one of the complete versions (io/atomic_file.hpp: temp file, fsync, rename), at most one
// temporary file may be left beside it (the killed writer's own; the next write removes it), and
// resuming the GPT example's training from the surviving checkpoint must reproduce the
// uninterrupted run's losses bit for bit.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <hyplora/io/atomic_file.hpp>
#include <hyplora/io/safetensors.hpp>

#include "../../examples/transformer/checkpoint.hpp"
#include "../../examples/transformer/model.hpp"
#include "../../examples/transformer/train.hpp"

namespace stress_test_crash_safe_checkpoint {  // one per test file: files share translation units (tests/CMakeLists.txt)

namespace fs = std::filesystem;
namespace io = hyplora::io;
namespace ad = hyplora::ad;
namespace ex = hyplora::examples;
using hyplora::MatrixR;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hyplora_stress_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

int temporaries(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

// Forks a child that runs `body` forever (or until it returns), then kills it after a random
// delay in [lo_ms, hi_ms) and reaps it. Returns true if the kill landed (the child was running).
template <class F>
bool run_and_kill(std::mt19937_64& rng, int lo_ms, int hi_ms, F&& body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      body();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  std::this_thread::sleep_for(std::chrono::microseconds(
      std::uniform_int_distribution<int>(lo_ms * 1000, hi_ms * 1000 - 1)(rng)));
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFEXITED(status)) CHECK(WEXITSTATUS(status) == 0);  // finished before the kill, cleanly
  return WIFSIGNALED(status);
}

ex::GPTConfig tiny() {
  ex::GPTConfig c;
  c.block_size = 16;
  c.width = 16;
  c.layers = 2;
  c.heads = 2;
  return c;
}

const std::string kText = "a beagle is a kind of hound. a hound is a kind of dog. a dog is a kind of canine.\n";

}  // namespace

TEST_CASE("SIGKILL during SafetensorsWriter::save never leaves a torn file or piled-up temporaries") {
  const fs::path dir = fresh_dir("kill_save");
  const fs::path path = dir / "ckpt.safetensors";
  // Two complete versions of about 2 MB each, with different contents and metadata.
  std::vector<io::SafetensorsWriter> versions(2);
  std::vector<std::vector<std::uint8_t>> bytes;
  for (int v = 0; v < 2; ++v) {
    MatrixR<float> w(512, 1024);
    for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>((i * 7 + v * 13) % 1001) * 0.001f;
    versions[static_cast<std::size_t>(v)].add("w", w).add("bias", MatrixR<float>::Constant(1, 8, static_cast<float>(v)));
    versions[static_cast<std::size_t>(v)].set_metadata("version", std::to_string(v));
    bytes.push_back(versions[static_cast<std::size_t>(v)].bytes());
  }
  versions[0].save(path);
  std::mt19937_64 rng(12345);
  int killed = 0;
  const int kKills = 30;
  for (int k = 0; k < kKills; ++k) {
    killed += run_and_kill(rng, 1, 60, [&] {
      for (int i = 0;; ++i) versions[static_cast<std::size_t>((i + k) % 2)].save(path);
    });
    const std::vector<std::uint8_t> now = io::read_file(path);
    const bool is_complete = now == bytes[0] || now == bytes[1];
    CAPTURE(k);
    CHECK(is_complete);
    const io::SafetensorsFile f(now, path.string());  // and it parses
    CHECK(f.metadata().count("version") == 1);
    CHECK(temporaries(dir) <= 1);
  }
  MESSAGE(killed << " of " << kKills << " children killed mid-loop");
  CHECK(killed == kKills);  // the writer never stops by itself: every kill must land
  versions[1].save(path);    // a later write removes the orphan of the last kill
  CHECK(temporaries(dir) == 0);
  fs::remove_all(dir);
}

TEST_CASE("resume after SIGKILL reproduces the uninterrupted run's losses bit for bit") {
  const fs::path dir = fresh_dir("kill_train");
  const fs::path path = dir / "run.safetensors";
  ex::TrainConfig tc;
  tc.steps = 40;
  tc.warmup = 4;
  tc.lr = 3e-3;
  tc.seed = 11;
  constexpr hyplora::Index B = 2, Tn = 8;
  // Every fork happens before this process trains anything (no thread pools forked mid-use).
  std::mt19937_64 rng(777);
  std::vector<std::vector<std::uint8_t>> survivors;
  for (int k = 0; k < 4; ++k) {
    fs::remove(path);
    run_and_kill(rng, 20, 400, [&] {
      ad::ParameterStore<float> s;
      ex::GPT<float> g(s, tiny());
      ex::Trainer<float> tr(g, s, tc);
      std::vector<std::int64_t> ids, tg;
      for (std::int64_t st = 0; st < tc.steps; ++st) {
        ex::lm_batch(kText, B, Tn, tc.seed, st, ids, tg);
        (void)tr.step(ids, tg, B, Tn);
        ex::save_checkpoint(path, s, &tr.optimizer(), ex::CheckpointState{tr.step_index(), tc.seed, {}});
      }
    });
    if (fs::exists(path)) survivors.push_back(io::read_file(path));
  }
  REQUIRE(!survivors.empty());

  // The uninterrupted run.
  ad::ParameterStore<float> s1;
  ex::GPT<float> g1(s1, tiny());
  ex::Trainer<float> t1(g1, s1, tc);
  std::vector<double> full;
  {
    std::vector<std::int64_t> ids, tg;
    for (std::int64_t st = 0; st < tc.steps; ++st) {
      ex::lm_batch(kText, B, Tn, tc.seed, st, ids, tg);
      full.push_back(t1.step(ids, tg, B, Tn));
    }
  }
  std::int64_t min_step = tc.steps, max_step = 0;
  for (const auto& bytes : survivors) {
    io::write_file_atomic(path, bytes);
    ad::ParameterStore<float> s;
    ex::GPT<float> g(s, tiny());
    ex::Trainer<float> tr(g, s, tc);
    const ex::CheckpointState st = ex::load_checkpoint(path, s, &tr.optimizer());
    REQUIRE(st.step >= 1);
    REQUIRE(st.step <= tc.steps);
    min_step = std::min(min_step, st.step);
    max_step = std::max(max_step, st.step);
    tr.set_step_index(st.step);
    std::vector<std::int64_t> ids, tg;
    for (std::int64_t k = st.step; k < tc.steps; ++k) {
      ex::lm_batch(kText, B, Tn, tc.seed, k, ids, tg);
      const double loss = tr.step(ids, tg, B, Tn);
      CAPTURE(k);
      CHECK(loss == full[static_cast<std::size_t>(k)]);
    }
    CHECK(s.values() == s1.values());
  }
  MESSAGE(survivors.size() << " killed runs resumed from steps " << min_step << " to " << max_step << " of " << tc.steps);
  fs::remove_all(dir);
}

}  // namespace stress_test_crash_safe_checkpoint
