/// Small hostile files built byte by byte for the resource-limit tests: PNGs whose header
/// claims any size (with a real deflate stream of zeros: a "deflate bomb"), and TIFFs with any
/// width, height, channel count and bit depth.
public enum HostileFiles {
  /// CRC-32 (IEEE, as PNG uses it).
  public static func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
      crc ^= UInt32(b)
      for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    return ~crc
  }

  public static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

  /// A PNG chunk: length, type, data, CRC.
  public static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    return be32(UInt32(data.count)) + body + be32(crc32(body))
  }

  /// A zlib stream that inflates to `count` zero bytes, about 1/160 of that in size: one
  /// literal 0, then length-258 distance-1 copies in a fixed-Huffman block (13 bits each).
  public static func zlibZeros(_ count: Int) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var bitBuffer: UInt64 = 0
    var bitCount = 0
    func bits(_ value: UInt32, _ n: Int) {  // LSB first
      bitBuffer |= UInt64(value) << UInt64(bitCount)
      bitCount += n
      while bitCount >= 8 {
        out.append(UInt8(bitBuffer & 0xFF))
        bitBuffer >>= 8
        bitCount -= 8
      }
    }
    /// A Huffman code, most significant bit first.
    func code(_ value: UInt32, _ n: Int) {
      for k in stride(from: n - 1, through: 0, by: -1) { bits((value >> UInt32(k)) & 1, 1) }
    }
    bits(1, 1)  // BFINAL
    bits(1, 2)  // fixed Huffman
    var left = count
    if left > 0 {
      code(0x30, 8)  // literal 0
      left -= 1
    }
    while left >= 258 {
      // Length 258 is code 285 (11000101, written most significant bit first, so reversed
      // for the LSB-first writer: 0xA3), then distance code 0 (5 zero bits): 13 bits.
      bits(0xA3, 13)
      left -= 258
    }
    while left > 0 {
      let n = min(258, left)
      if n < 3 {
        for _ in 0..<n { code(0x30, 8) }
        left -= n
        continue
      }
      // Length n: codes 257... (fixed table, with extra bits); 258 is code 285, no extra bits.
      let (sym, extraBits, extra) = lengthCode(n)
      if sym < 280 { code(UInt32(sym - 256), 7) } else { code(UInt32(0xC0 + sym - 280), 8) }
      if extraBits > 0 { bits(UInt32(extra), extraBits) }
      code(0, 5)  // distance 1
      left -= n
    }
    code(0, 7)  // end of block
    if bitCount > 0 { bits(0, 8 - bitCount) }
    // Adler-32 of count zeros: a = 1, b = count mod 65521.
    let b = UInt32(count % 65521)
    out += be32(b << 16 | 1)
    return out
  }

  static func lengthCode(_ n: Int) -> (Int, Int, Int) {
    let base = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    let extra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    var k = base.count - 1
    while base[k] > n { k -= 1 }
    return (257 + k, extra[k], n - base[k])
  }

  /// A gray 8-bit PNG of `width` × `height` whose pixel data is all zeros (every row filter
  /// byte too), or, with `zeros`, an IDAT holding only that many zero bytes (a tiny file whose
  /// header claims the size).
  /// `before` holds whole chunks to put between IHDR and IDAT.
  public static func png(width: Int, height: Int, zeros: Int? = nil, before: [UInt8] = []) -> [UInt8] {
    var out = pngHeader(width: width, height: height) + before
    out += chunk("IDAT", zlibZeros(zeros ?? (width + 1) * height))
    out += chunk("IEND", [])
    return out
  }

  /// The signature and IHDR chunk of a gray 8-bit PNG.
  public static func pngHeader(width: Int, height: Int) -> [UInt8] {
    [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [8, 0, 0, 0, 0])
  }

  /// A little-endian TIFF with one uncompressed strip of `stripBytes` bytes (zeros), whatever
  /// the header claims.
  public static func tiff(width: Int, height: Int, channels: Int, bitsPerSample: Int, float: Bool, stripBytes: Int) -> [UInt8] {
    var entries: [(UInt16, UInt16, UInt32)] = [  // tag, type (3 SHORT, 4 LONG), value
      (256, 4, UInt32(width)), (257, 4, UInt32(height)), (258, 3, UInt32(bitsPerSample)), (259, 3, 1), (262, 3, 1),
      (273, 4, 8), (277, 3, UInt32(channels)), (278, 4, UInt32(height)), (279, 4, UInt32(stripBytes)),
      (284, 3, 1), (339, 3, float ? 3 : 1),
    ]
    entries.sort { $0.0 < $1.0 }
    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)] }
    let ifd = 8 + stripBytes + (stripBytes & 1)
    var out: [UInt8] = [0x49, 0x49, 42, 0] + le32(UInt32(ifd))
    out += [UInt8](repeating: 0, count: stripBytes + (stripBytes & 1))
    out += le16(UInt16(entries.count))
    for (tag, type, value) in entries {
      // A SHORT holding several values (BitsPerSample, SampleFormat for many channels) is
      // stored as one count: libtiff accepts a single value for all samples.
      out += le16(tag) + le16(type) + le32(1) + (type == 3 ? le16(UInt16(value)) + [0, 0] : le32(value))
    }
    out += le32(0)
    return out
  }
}
