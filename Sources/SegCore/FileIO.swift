#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif
import Synchronization

/// A file-system error: the path, the operation and the system's reason.
public typealias FileIOError = DomainError<FileIOErrorCode>

/// The codes of ``FileIOError``.
public enum FileIOErrorCode: String, ErrorCode {
  case notFound, permissionDenied, isDirectory, ioFailure
  /// Larger than the caller's limit (refused before reading).
  case tooLarge
}

extension DomainError where Code == FileIOErrorCode {
  /// An error from errno `e` while doing `doing` ("open", "read", …) to `path`.
  public init(errno e: Int32, path: String, doing: String) {
    let code: FileIOErrorCode
    switch e {
    case ENOENT: code = .notFound
    case EACCES, EPERM: code = .permissionDenied
    case EISDIR: code = .isDirectory
    default: code = .ioFailure
    }
    self.init(code, path: path, "cannot \(doing): \(String(cString: strerror(e)))")
  }
}

/// What stat(2) says about a file that the code base uses.
public struct FileStatus: Sendable, Equatable {
  public var bytes: Int
  /// Modification time in nanoseconds since the epoch.
  public var mtimeNanoseconds: Int64
}

/// Whole-file reads and crash-safe whole-file writes through POSIX calls, with errors that
/// carry errno's reason (Foundation's `contents(atPath:)` only says nil).
public enum FileIO {
  /// The bytes of the file at `path`; a file of more than `maxBytes` bytes is refused
  /// (`.tooLarge`) before anything is read.
  public static func read(_ path: String, maxBytes: Int = Int.max) throws(FileIOError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw FileIOError(errno: errno, path: path, doing: "open") }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw FileIOError(errno: errno, path: path, doing: "stat") }
    if (st.st_mode & S_IFMT) == S_IFDIR {
      throw FileIOError(.isDirectory, path: path, "is a directory, not a file")
    }
    let expected = Int(st.st_size)
    if expected > maxBytes {
      throw FileIOError(.tooLarge, path: path, "is \(expected) bytes, above the limit of \(maxBytes)")
    }
    var out = [UInt8]()
    out.reserveCapacity(max(expected, 0) + 1)
    var chunk = [UInt8](repeating: 0, count: max(1 << 16, min(expected + 1, 1 << 26)))
    while true {
      let n = chunk.withUnsafeMutableBytes { Glibc_read(fd, $0.baseAddress, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw FileIOError(errno: errno, path: path, doing: "read")
      }
      if n == 0 { break }
      if n > maxBytes - out.count {
        throw FileIOError(.tooLarge, path: path, "grew past the limit of \(maxBytes) bytes while being read")
      }
      out.append(contentsOf: chunk[0..<n])
    }
    return out
  }

  /// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never
  /// a partial file: write to a temporary name in the same folder, fsync, rename, fsync the
  /// folder.
  public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(FileIOError) {
    let tmp = temporaryName(for: path)
    // Errors name `path` (what the caller asked for), not the temporary name.
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw FileIOError(errno: errno, path: path, doing: "create") }
    var ok = false
    defer {
      if !ok { unlink(tmp) }
    }
    do {
      defer { close(fd) }
      try writeAll(fd, bytes, path: path)
      if fsync(fd) != 0 { throw FileIOError(errno: errno, path: path, doing: "fsync") }
    }
    if rename(tmp, path) != 0 { throw FileIOError(errno: errno, path: path, doing: "rename into place") }
    ok = true
    syncDirectory(of: path)
  }

  /// Appends `bytes` to the file at `path`, creating it when missing (for logs such as
  /// metrics.jsonl: a crash mid-write leaves at most a partial last line).
  public static func append(_ bytes: [UInt8], to path: String) throws(FileIOError) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    if fd < 0 { throw FileIOError(errno: errno, path: path, doing: "open for appending") }
    defer { close(fd) }
    try writeAll(fd, bytes, path: path)
  }

  /// Writes all of `bytes` to an open descriptor, retrying short writes.
  public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(FileIOError) {
    var offset = 0
    while offset < bytes.count {
      let n = bytes.withUnsafeBytes { buf in
        Glibc_write(fd, buf.baseAddress! + offset, bytes.count - offset)
      }
      if n < 0 {
        if errno == EINTR { continue }
        throw FileIOError(errno: errno, path: path, doing: "write")
      }
      offset += n
    }
  }

  /// fsyncs the folder holding `path`, so a rename in it survives a crash.
  public static func syncDirectory(of path: String) {
    let dir = parentDirectory(of: path)
    let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 {
      fsync(fd)
      close(fd)
    }
  }

  /// A temporary file name next to `path`, unique to this process and call.
  public static func temporaryName(for path: String) -> String {
    let dir = parentDirectory(of: path)
    let base = path.split(separator: "/").last.map(String.init) ?? path
    return "\(dir)/.\(base).tmp-\(getpid())-\(nextTemporaryCounter())"
  }

  /// The folder part of a path ("." when there is none).
  public static func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
  }

  /// The size and modification time of what `path` names (stat(2), following links).
  public static func status(_ path: String) throws(FileIOError) -> FileStatus {
    var st = stat()
    guard stat(path, &st) == 0 else { throw FileIOError(errno: errno, path: path, doing: "stat") }
    #if canImport(Darwin)
      let mtime = st.st_mtimespec
    #else
      let mtime = st.st_mtim
    #endif
    return FileStatus(bytes: Int(st.st_size), mtimeNanoseconds: Int64(mtime.tv_sec) * 1_000_000_000 + Int64(mtime.tv_nsec))
  }

  /// Whether `path` names a directory.
  public static func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
  }

  /// Whether anything exists at `path`.
  public static func exists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
  }

  /// Creates `path` and its missing parents (like `mkdir -p`).
  public static func makeDirectories(_ path: String) throws(FileIOError) {
    if isDirectory(path) { return }
    let parent = parentDirectory(of: path)
    if parent != path && parent != "." && parent != "/" && !exists(parent) {
      try makeDirectories(parent)
    }
    if mkdir(path, 0o755) != 0 && errno != EEXIST {
      throw FileIOError(errno: errno, path: path, doing: "create directory")
    }
  }

  /// The names in a folder (no "." or ".."), sorted byte-wise so listings are reproducible.
  public static func listDirectory(_ path: String) throws(FileIOError) -> [String] {
    guard let dir = opendir(path) else { throw FileIOError(errno: errno, path: path, doing: "list directory") }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafePointer(to: entry.pointee.d_name) { ptr in
        ptr.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
  }

  /// The current working directory ("." if it cannot be read).
  public static func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return "." }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Removes a file if it exists.
  public static func remove(_ path: String) {
    unlink(path)
  }
}

// A process-wide counter for temporary names.
private let temporaryCounter = Atomic<Int>(0)

private func nextTemporaryCounter() -> Int {
  temporaryCounter.add(1, ordering: .relaxed).newValue
}

@inline(__always)
private func Glibc_read(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ n: Int) -> Int {
  read(fd, buf, n)
}

@inline(__always)
private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int) -> Int {
  write(fd, buf, n)
}
