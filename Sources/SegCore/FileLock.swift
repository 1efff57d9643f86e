#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// An exclusive advisory lock (flock(2)) held on a lock file for as long as the value lives;
/// the file names its holder (pid, host, start time) for the error another process prints.
///
/// The lock file is removed when the lock is released. A process that opened the file just
/// before it was removed finds, once it holds the lock, that the path no longer names the file
/// it locked, and tries again, so two processes can never both hold the lock. flock works on
/// local file systems and, since Linux 2.6.12, on NFS (as a POSIX lock). A process that dies
/// (even by SIGKILL) releases its lock with its descriptors; the file it leaves is reused.
public final class FileLock {
  public let path: String
  private let fd: Int32

  private init(path: String, fd: Int32) {
    self.path = path
    self.fd = fd
  }

  deinit {
    unlink(path)
    close(fd)
  }

  /// What `acquire` found.
  public enum Outcome {
    /// The lock is ours until the value is released.
    case acquired(FileLock)
    /// Another process holds it; its description (or "another process" if it wrote none).
    case held(by: String)
    /// The folder cannot be written (read-only file system, no permission): nothing can
    /// write there, so there is nothing to lock against.
    case unwritable(reason: String)
  }

  /// Takes the lock at `path` without waiting.
  public static func acquire(_ path: String) throws(FileIOError) -> Outcome {
    while true {
      let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
      if fd < 0 {
        let e = errno
        if e == EROFS || e == EACCES || e == EPERM { return .unwritable(reason: String(cString: strerror(e))) }
        throw FileIOError(errno: e, path: path, doing: "create the lock file")
      }
      if flock(fd, LOCK_EX | LOCK_NB) != 0 {
        let e = errno
        let holder = describeHolder(fd)
        close(fd)
        if e == EWOULDBLOCK { return .held(by: holder) }
        throw FileIOError(errno: e, path: path, doing: "lock")
      }
      // Still the file at `path`? (Its previous holder may have removed it meanwhile.)
      var mine = stat()
      var there = stat()
      if fstat(fd, &mine) == 0, stat(path, &there) == 0, mine.st_ino == there.st_ino, mine.st_dev == there.st_dev {
        let lock = FileLock(path: path, fd: fd)
        lock.writeOwner()
        return .acquired(lock)
      }
      close(fd)
    }
  }

  /// The holder of the lock at `path` if someone holds it now (the file is not created).
  public static func holder(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    if flock(fd, LOCK_SH | LOCK_NB) == 0 {
      flock(fd, LOCK_UN)
      return nil
    }
    return describeHolder(fd)
  }

  private func writeOwner() {
    var host = [CChar](repeating: 0, count: 256)
    gethostname(&host, host.count - 1)
    let hostName = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    let stamp =
      format4(Int(parts.tm_year) + 1900) + "-" + format2(Int(parts.tm_mon) + 1) + "-" + format2(Int(parts.tm_mday)) + " "
      + format2(Int(parts.tm_hour)) + ":" + format2(Int(parts.tm_min)) + ":" + format2(Int(parts.tm_sec)) + " UTC"
    let text = "pid \(getpid()) on \(hostName) since \(stamp)"
    ftruncate(fd, 0)
    _ = Array(text.utf8).withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
  }

  private static func describeHolder(_ fd: Int32) -> String {
    var buffer = [UInt8](repeating: 0, count: 200)
    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
    let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).replacingNewlines() : ""
    return text.isEmpty ? "another process" : text
  }
}

private func format2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
private func format4(_ v: Int) -> String { String(repeating: "0", count: max(0, 4 - String(v).count)) + String(v) }
