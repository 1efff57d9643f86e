import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// POSIX ustar archives, as WebDataset reads them: 512-byte headers, member data padded to
/// 512 bytes, two zero blocks at the end. Headers are deterministic (mtime 0, uid/gid 0,
/// mode 0644, owner "unet") so the same members give the same bytes on every machine.
public enum Tar {
  public static let block = 512

  /// The 512-byte header of a regular file member.
  public static func header(name: String, size: Int) -> [UInt8] {
    precondition(name.utf8.count <= 100, "tar member name longer than 100 bytes: \(name)")
    var h = [UInt8](repeating: 0, count: block)
    func put(_ text: String, at offset: Int, width: Int) {
      for (i, b) in text.utf8.prefix(width).enumerated() { h[offset + i] = b }
    }
    func octal(_ v: Int, at offset: Int, width: Int) {
      // width − 1 octal digits, zero-padded, then NUL.
      let digits = String(v, radix: 8)
      put(String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits, at: offset, width: width - 1)
    }
    put(name, at: 0, width: 100)
    octal(0o644, at: 100, width: 8)
    octal(0, at: 108, width: 8)
    octal(0, at: 116, width: 8)
    octal(size, at: 124, width: 12)
    octal(0, at: 136, width: 12)  // mtime: fixed for reproducible archives
    h[156] = UInt8(ascii: "0")
    put("ustar", at: 257, width: 6)  // "ustar\0"
    put("00", at: 263, width: 2)
    put("unet", at: 265, width: 32)
    put("unet", at: 297, width: 32)
    // Checksum: sum of all bytes with the checksum field as spaces.
    for i in 148..<156 { h[i] = UInt8(ascii: " ") }
    let sum = h.reduce(0) { $0 + Int($1) }
    let digits = String(sum, radix: 8)
    put(String(repeating: "0", count: max(0, 6 - digits.count)) + digits, at: 148, width: 6)
    h[154] = 0
    h[155] = UInt8(ascii: " ")
    return h
  }

  /// Bytes of padding after `size` bytes of data.
  public static func padding(_ size: Int) -> Int { (block - size % block) % block }

  /// One member as the reader finds it.
  public struct Member: Sendable, Equatable {
    public var name: String
    /// Offset of the data (after the header) in the archive.
    public var offset: Int
    public var size: Int
  }

  /// Parses the headers of an archive held in memory.
  ///
  /// - Throws: `CacheError` (`.truncated` when a member runs past the end, `.corrupt` for a
  ///   bad header checksum or size field).
  public static func members(_ bytes: [UInt8], path: String) throws(CacheError) -> [Member] {
    var out: [Member] = []
    var offset = 0
    while offset + block <= bytes.count {
      let h = bytes[offset..<(offset + block)]
      if h.allSatisfy({ $0 == 0 }) { return out }
      let stored = parseOctal(h, from: offset + 148, width: 8)
      var sum = 0
      for i in 0..<block { sum += (i >= 148 && i < 156) ? 32 : Int(bytes[offset + i]) }
      guard let stored, stored == sum else {
        throw CacheError(.corrupt, path: path, "tar header at byte \(offset) has a bad checksum")
      }
      guard let size = parseOctal(h, from: offset + 124, width: 12) else {
        throw CacheError(.corrupt, path: path, "tar header at byte \(offset) has a bad size field")
      }
      let nameBytes = bytes[offset..<(offset + 100)].prefix { $0 != 0 }
      let prefixBytes = bytes[(offset + 345)..<(offset + 500)].prefix { $0 != 0 }
      var name = String(decoding: nameBytes, as: UTF8.self)
      if !prefixBytes.isEmpty { name = String(decoding: prefixBytes, as: UTF8.self) + "/" + name }
      let dataStart = offset + block
      guard dataStart + size <= bytes.count else {
        throw CacheError(.truncated, path: path, "member \(name) runs past the end of the file")
      }
      out.append(Member(name: name, offset: dataStart, size: size))
      offset = dataStart + size + padding(size)
    }
    if offset < bytes.count || out.isEmpty {
      throw CacheError(.truncated, path: path, "the archive ends inside a header")
    }
    throw CacheError(.truncated, path: path, "the archive has no end-of-archive blocks")
  }

  static func parseOctal(_ bytes: ArraySlice<UInt8>, from start: Int, width: Int) -> Int? {
    var v = 0
    var seen = false
    for b in bytes[start..<(start + width)] {
      if b == 0 || b == UInt8(ascii: " ") {
        if seen { break }
        continue
      }
      guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "7") else { return nil }
      v = v * 8 + Int(b - UInt8(ascii: "0"))
      seen = true
    }
    return seen ? v : nil
  }
}

/// Writes a tar archive to a temporary file next to its final name, hashing it on the way, and
/// renames it into place only after fsync: a crash leaves either no file or a complete one.
public final class TarFileWriter {
  public let path: String
  let temporary: String
  private var fd: Int32
  private var hasher = SHA256()
  public private(set) var bytesWritten = 0
  private var finished = false

  public init(path: String) throws(FileIOError) {
    self.path = path
    self.temporary = FileIO.temporaryName(for: path)
    // Errors name `path` (the shard being written), not the temporary name.
    fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw FileIOError(errno: errno, path: path, doing: "create") }
  }

  deinit {
    if !finished {
      close(fd)
      unlink(temporary)
    }
  }

  private func write(_ bytes: [UInt8]) throws(FileIOError) {
    try FileIO.writeAll(fd, bytes, path: path)
    hasher.update(bytes)
    bytesWritten += bytes.count
  }

  /// Appends a member; returns the offset of its data in the archive.
  @discardableResult
  public func add(name: String, data: [UInt8]) throws(FileIOError) -> Int {
    try write(Tar.header(name: name, size: data.count))
    let offset = bytesWritten
    try write(data)
    let pad = Tar.padding(data.count)
    if pad > 0 { try write([UInt8](repeating: 0, count: pad)) }
    return offset
  }

  /// Ends the archive, fsyncs, renames it into place; returns (bytes, SHA-256 hex).
  public func finish() throws(FileIOError) -> (bytes: Int, sha256: String) {
    try write([UInt8](repeating: 0, count: 2 * Tar.block))
    if fsync(fd) != 0 {
      throw FileIOError(errno: errno, path: path, doing: "fsync")
    }
    close(fd)
    finished = true
    if rename(temporary, path) != 0 {
      let e = errno
      unlink(temporary)
      throw FileIOError(errno: e, path: path, doing: "rename into place")
    }
    FileIO.syncDirectory(of: path)
    return (bytesWritten, hasher.finalize().hexString)
  }
}
