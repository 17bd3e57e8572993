// hyplora/io/atomic_file.hpp — write a file so that readers see the old or the new contents,
// never a torn mix, and read a whole file.
//
// write_file_atomic: write to a temporary file in the target's directory (same filesystem, so the
// rename is atomic), fsync it, rename it over the target, fsync the directory so the rename itself
// survives a crash. On any failure the temporary file is removed and the target is untouched.
// If `path` is a symbolic link, the link itself is replaced (rename semantics).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "hyplora/core/errors.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#define HYPLORA_IO_POSIX 1
#else
#include <fstream>
#define HYPLORA_IO_POSIX 0
#endif

namespace hyplora::io {

namespace detail {

inline std::string errno_message(const std::string& what, const std::filesystem::path& p,
                                 int err) {
  return what + " '" + p.string() + "': " + std::strerror(err);
}

}  // namespace detail

/// Where a writer callback puts its bytes. Each write goes straight to the temporary file.
class FileSink {
 public:
  void write(const void* data, std::size_t n) {
    if (n == 0) return;
#if HYPLORA_IO_POSIX
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ::ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw io_error(detail::errno_message("cannot write", tmp_, errno));
      }
      p += w;
      n -= static_cast<std::size_t>(w);
      written_ += static_cast<std::uint64_t>(w);
    }
#else
    out_->write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    if (!*out_) throw io_error("cannot write '" + tmp_.string() + "'");
    written_ += n;
#endif
  }
  void write(std::string_view s) { write(s.data(), s.size()); }
  /// Bytes written so far.
  std::uint64_t written() const { return written_; }

 private:
  friend void write_file_atomic(const std::filesystem::path&,
                                const std::function<void(FileSink&)>&);
#if HYPLORA_IO_POSIX
  FileSink(int fd, std::filesystem::path tmp) : fd_(fd), tmp_(std::move(tmp)) {}
  int fd_;
#else
  FileSink(std::ofstream* out, std::filesystem::path tmp) : out_(out), tmp_(std::move(tmp)) {}
  std::ofstream* out_;
#endif
  std::filesystem::path tmp_;
  std::uint64_t written_ = 0;
};

#if HYPLORA_IO_POSIX
namespace detail {
/// Removes ".<name>.tmp.<pid>.<n>" files beside `path` left by writers that were killed (SIGKILL,
/// power loss) before their cleanup ran: only those whose <pid> is no live process, never this
/// process's own. Without it, a writer killed repeatedly piles up one orphan per kill.
/// Best effort: errors are ignored (the write itself reports real failures).
inline void remove_stale_temporaries(const std::filesystem::path& dir, const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const std::string prefix = "." + path.filename().string() + ".tmp.";
  const long self = static_cast<long>(::getpid());
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos || dot == prefix.size()) continue;
    long pid = 0;
    bool digits = true;
    for (std::size_t i = prefix.size(); i < dot && digits; ++i) {
      digits = name[i] >= '0' && name[i] <= '9' && pid < 100'000'000L;
      pid = pid * 10 + (name[i] - '0');
    }
    if (!digits || pid <= 0 || pid == self) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code rm;
      fs::remove(it->path(), rm);
    }
  }
}
}  // namespace detail
#endif

/// Atomically replace `path` with what `writer` writes into the sink. If the writer throws, the
/// temporary file is removed, `path` keeps its old contents, and the writer's exception
/// propagates unchanged. System-call failures throw io_error naming the path and strerror.
inline void write_file_atomic(const std::filesystem::path& path,
                              const std::function<void(FileSink&)>& writer) {
  namespace fs = std::filesystem;
  if (path.empty() || !path.has_filename()) {
    throw io_error("write_file_atomic: '" + path.string() + "' does not name a file");
  }
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  // Unique in this process (counter) and across processes (pid); O_EXCL catches the rest.
  static std::atomic<unsigned long long> counter{0};
#if HYPLORA_IO_POSIX
  const unsigned long long pid = static_cast<unsigned long long>(::getpid());
#else
  const unsigned long long pid = 0;
#endif

  fs::path tmp;
#if HYPLORA_IO_POSIX
  detail::remove_stale_temporaries(dir, path);
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = dir / ("." + path.filename().string() + ".tmp." + std::to_string(pid) + "." +
                 std::to_string(counter.fetch_add(1)));
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST && errno != EINTR) {
      throw io_error(detail::errno_message("cannot create temporary file for", path, errno));
    }
  }
  if (fd < 0) throw io_error(detail::errno_message("cannot create temporary file for", path, errno));

  // Removes the temporary file unless the rename happened.
  struct Guard {
    int& fd;
    const fs::path& tmp;
    bool committed = false;
    ~Guard() {
      if (fd >= 0) ::close(fd);
      if (!committed) ::unlink(tmp.c_str());
    }
  } guard{fd, tmp};

  FileSink sink(fd, tmp);
  writer(sink);
  if (::fsync(fd) != 0) throw io_error(detail::errno_message("cannot fsync", tmp, errno));
  const int fd_to_close = fd;
  fd = -1;  // close exactly once, even if close fails
  if (::close(fd_to_close) != 0) {
    throw io_error(detail::errno_message("cannot close", tmp, errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw io_error(detail::errno_message("cannot rename temporary file onto", path, errno));
  }
  guard.committed = true;
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    // Some filesystems cannot fsync a directory (EINVAL); the rename has happened regardless.
    if (rc != 0 && err != EINVAL && err != EROFS) {
      throw io_error(detail::errno_message("cannot fsync directory of", path, err));
    }
  }
#else
  // Portable fallback (no fsync available through the standard library).
  tmp = dir / ("." + path.filename().string() + ".tmp." + std::to_string(pid) + "." +
               std::to_string(counter.fetch_add(1)));
  struct Guard {
    const fs::path& tmp;
    bool committed = false;
    ~Guard() {
      std::error_code ec;
      if (!committed) fs::remove(tmp, ec);
    }
  } guard{tmp};
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw io_error("cannot create temporary file for '" + path.string() + "'");
    FileSink sink(&out, tmp);
    writer(sink);
    out.flush();
    if (!out) throw io_error("cannot write '" + tmp.string() + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw io_error("cannot rename temporary file onto '" + path.string() + "': " + ec.message());
  guard.committed = true;
#endif
}

/// Atomically replace `path` with `size` bytes at `data`.
inline void write_file_atomic(const std::filesystem::path& path, const void* data,
                              std::size_t size) {
  write_file_atomic(path, [&](FileSink& s) { s.write(data, size); });
}

inline void write_file_atomic(const std::filesystem::path& path,
                              const std::vector<std::uint8_t>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

/// The whole contents of `path`. io_error (with strerror) if it cannot be opened or read,
/// including when it is a directory.
inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.string().c_str(), "rb");
  if (f == nullptr) throw io_error(detail::errno_message("cannot open", path, errno));
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof(buf), f);
    out.insert(out.end(), buf, buf + n);
    if (n < sizeof(buf)) {
      if (std::ferror(f) != 0) {
        const int err = errno;
        std::fclose(f);
        throw io_error(detail::errno_message("cannot read", path, err));
      }
      break;
    }
  }
  std::fclose(f);
  return out;
}

}  // namespace hyplora::io
