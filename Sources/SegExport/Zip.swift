/// CRC-32 as zip, PNG and gzip use it (IEEE 802.3, reflected polynomial 0xEDB88320, initial
/// value and final XOR 0xFFFFFFFF; check value of "123456789" is 0xCBF43926).
public enum CRC32 {
  static let table: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
  }

  /// The CRC-32 of `bytes`, continuing from `crc` (0 to start).
  /// - Complexity: O(n), one table look-up per byte.
  public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
    var c = ~crc
    table.withUnsafeBufferPointer { t in
      bytes.withUnsafeBufferPointer { b in
        for byte in b { c = t[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
      }
    }
    return ~c
  }
}

/// A zip archive writer (PKWARE APPNOTE 6.3: local file headers, the central directory and
/// the end-of-central-directory record). Members are stored uncompressed (method 0): the
/// weights that make up almost all of a model package do not compress, and stored members
/// can be read in place. Names are UTF-8 (general-purpose flag bit 11); every member carries
/// the fixed time stamp 1980-01-01 00:00, so the same inputs give the same bytes.
///
/// Limits: no ZIP64, so each member and the whole archive stay under 4 GiB and there are at
/// most 65,535 members (checked; ``ExportError`` `tooLarge` otherwise).
public struct ZipWriter: Sendable {
  struct Entry {
    var name: [UInt8]
    var crc: UInt32
    var size: UInt32
    var offset: UInt32
  }

  private var entries: [Entry] = []
  /// The archive's bytes so far (local headers and data).
  private var body: [UInt8] = []

  public init() {}

  /// The member names, in order.
  public var names: [String] { entries.map { String(decoding: $0.name, as: UTF8.self) } }

  /// Adds a member `name` (a relative path with `/` separators) holding `data`.
  public mutating func add(_ name: String, _ data: [UInt8]) throws(ExportError) {
    guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
      preconditionFailure("ZipWriter: member name \"\(name)\" must be a relative path")
    }
    guard !names.contains(name) else { preconditionFailure("ZipWriter: member \"\(name)\" added twice") }
    let limit = Int(UInt32.max)
    guard data.count < limit, body.count + data.count + 30 + name.utf8.count < limit, entries.count < 0xFFFF else {
      throw ExportError(.tooLarge, path: nil, "\(name): the package would exceed the 4 GiB / 65,535 members a zip without ZIP64 holds")
    }
    let nameBytes = Array(name.utf8)
    let entry = Entry(name: nameBytes, crc: CRC32.checksum(data), size: UInt32(data.count), offset: UInt32(body.count))
    body.reserveCapacity(body.count + 30 + nameBytes.count + data.count)
    le32(&body, 0x0403_4B50)  // local file header signature
    le16(&body, 10)  // version needed: 1.0 (stored)
    le16(&body, 1 << 11)  // flags: UTF-8 names
    le16(&body, 0)  // method: stored
    le16(&body, Self.dosTime)
    le16(&body, Self.dosDate)
    le32(&body, entry.crc)
    le32(&body, entry.size)  // compressed size
    le32(&body, entry.size)  // uncompressed size
    le16(&body, UInt16(nameBytes.count))
    le16(&body, 0)  // extra field length
    body += nameBytes
    body += data
    entries.append(entry)
  }

  /// 00:00:00 (hours << 11 | minutes << 5 | seconds / 2).
  static let dosTime: UInt16 = 0
  /// 1980-01-01 ((year − 1980) << 9 | month << 5 | day).
  static let dosDate: UInt16 = 1 << 5 | 1

  /// The whole archive: members, central directory, end record.
  public func encoded() throws(ExportError) -> [UInt8] {
    var out = body
    let directoryOffset = out.count
    for e in entries {
      le32(&out, 0x0201_4B50)  // central directory header signature
      le16(&out, 0x031E)  // version made by: 3.0, Unix
      le16(&out, 10)
      le16(&out, 1 << 11)
      le16(&out, 0)
      le16(&out, Self.dosTime)
      le16(&out, Self.dosDate)
      le32(&out, e.crc)
      le32(&out, e.size)
      le32(&out, e.size)
      le16(&out, UInt16(e.name.count))
      le16(&out, 0)  // extra
      le16(&out, 0)  // comment
      le16(&out, 0)  // disk number start
      le16(&out, 0)  // internal attributes
      le32(&out, 0o100644 << 16)  // external attributes: a regular file, rw-r--r--
      le32(&out, e.offset)
      out += e.name
    }
    let directorySize = out.count - directoryOffset
    guard out.count + 22 < Int(UInt32.max) else {
      throw ExportError(.tooLarge, path: nil, "the package would exceed the 4 GiB a zip without ZIP64 holds")
    }
    le32(&out, 0x0605_4B50)  // end of central directory signature
    le16(&out, 0)  // this disk
    le16(&out, 0)  // disk with the directory
    le16(&out, UInt16(entries.count))
    le16(&out, UInt16(entries.count))
    le32(&out, UInt32(directorySize))
    le32(&out, UInt32(directoryOffset))
    le16(&out, 0)  // comment length
    return out
  }
}

private func le16(_ out: inout [UInt8], _ v: UInt16) {
  out.append(UInt8(truncatingIfNeeded: v))
  out.append(UInt8(truncatingIfNeeded: v >> 8))
}

private func le32(_ out: inout [UInt8], _ v: UInt32) {
  for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> UInt32(8 * i))) }
}
