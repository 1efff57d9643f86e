/// SHA-256 (FIPS 180-4), incremental. Used for shard and checkpoint checksums and for
/// content-addressed cache keys; written here to avoid a large dependency for one function.
///
/// - Complexity: O(n) in the bytes hashed; about 64 rounds per 64-byte block.
public struct SHA256: Sendable {
  private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
    0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
  )
  private var buffer = [UInt8](repeating: 0, count: 64)
  private var buffered = 0
  private var length: UInt64 = 0

  public init() {}

  /// The digest of `bytes` in one call.
  public static func hash<C: Collection<UInt8>>(_ bytes: C) -> [UInt8] {
    var h = SHA256()
    h.update(bytes)
    return h.finalize()
  }

  /// The lowercase hex digest of `bytes`.
  public static func hex<C: Collection<UInt8>>(_ bytes: C) -> String {
    hash(bytes).hexString
  }

  /// Adds bytes to the message.
  public mutating func update<C: Collection<UInt8>>(_ bytes: C) {
    if let done = bytes.withContiguousStorageIfAvailable({ update(raw: UnsafeRawBufferPointer($0)) }) {
      return done
    }
    let copy = Array(bytes)
    copy.withUnsafeBytes { update(raw: $0) }
  }

  /// Adds the bytes in `raw` to the message.
  public mutating func update(raw: UnsafeRawBufferPointer) {
    guard let base = raw.baseAddress, raw.count > 0 else { return }
    length &+= UInt64(raw.count)
    var offset = 0
    if buffered > 0 {
      let take = min(64 - buffered, raw.count)
      for i in 0..<take { buffer[buffered + i] = raw[i] }
      buffered += take
      offset = take
      if buffered < 64 { return }
      do {
        buffer.withUnsafeBytes { block in
          if let start = block.baseAddress { compress(start) }
        }
        buffered = 0
      }
    }
    while raw.count - offset >= 64 {
      compress(base + offset)
      offset += 64
    }
    let rest = raw.count - offset
    for i in 0..<rest { buffer[i] = raw[offset + i] }
    buffered = rest
  }

  /// The 32-byte digest. The hasher should not be used afterwards.
  public mutating func finalize() -> [UInt8] {
    let bitLength = length &* 8
    var pad: [UInt8] = [0x80]
    let zeros = (64 + 56 - (buffered + 1) % 64) % 64
    pad += [UInt8](repeating: 0, count: zeros)
    for k in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(k)))) }
    let saved = length
    update(pad)
    length = saved
    precondition(buffered == 0, "SHA256 padding left \(buffered) bytes")
    var out: [UInt8] = []
    out.reserveCapacity(32)
    for word in [state.0, state.1, state.2, state.3, state.4, state.5, state.6, state.7] {
      out += [UInt8(word >> 24), UInt8((word >> 16) & 0xFF), UInt8((word >> 8) & 0xFF), UInt8(word & 0xFF)]
    }
    return out
  }

  private static let k: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
    0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
    0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
    0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
    0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
    0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
    0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
  ]

  @inline(__always)
  private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

  private mutating func compress(_ block: UnsafeRawPointer) {
    var w = (
      UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0),
      UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0), UInt32(0)
    )
    withUnsafeMutableBytes(of: &w) { raw in
      let words = raw.bindMemory(to: UInt32.self)
      for i in 0..<16 {
        words[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
      }
    }
    var a = state.0, b = state.1, c = state.2, d = state.3
    var e = state.4, f = state.5, g = state.6, h = state.7
    Self.k.withUnsafeBufferPointer { k in
      withUnsafeMutableBytes(of: &w) { raw in
        let m = raw.bindMemory(to: UInt32.self)
        for i in 0..<64 {
          let wi: UInt32
          if i < 16 {
            wi = m[i]
          } else {
            let w15 = m[(i - 15) & 15]
            let w2 = m[(i - 2) & 15]
            let s0 = Self.rotr(w15, 7) ^ Self.rotr(w15, 18) ^ (w15 >> 3)
            let s1 = Self.rotr(w2, 17) ^ Self.rotr(w2, 19) ^ (w2 >> 10)
            wi = m[i & 15] &+ s0 &+ m[(i - 7) & 15] &+ s1
            m[i & 15] = wi
          }
          let S1 = Self.rotr(e, 6) ^ Self.rotr(e, 11) ^ Self.rotr(e, 25)
          let ch = (e & f) ^ (~e & g)
          let t1 = h &+ S1 &+ ch &+ k[i] &+ wi
          let S0 = Self.rotr(a, 2) ^ Self.rotr(a, 13) ^ Self.rotr(a, 22)
          let maj = (a & b) ^ (a & c) ^ (b & c)
          let t2 = S0 &+ maj
          h = g
          g = f
          f = e
          e = d &+ t1
          d = c
          c = b
          b = a
          a = t1 &+ t2
        }
      }
    }
    state.0 &+= a
    state.1 &+= b
    state.2 &+= c
    state.3 &+= d
    state.4 &+= e
    state.5 &+= f
    state.6 &+= g
    state.7 &+= h
  }
}

extension Array where Element == UInt8 {
  /// Lowercase hexadecimal.
  public var hexString: String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(count * 2)
    for b in self {
      out.append(digits[Int(b >> 4)])
      out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }
}
