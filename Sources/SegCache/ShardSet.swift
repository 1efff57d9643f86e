import Foundation
import SegCore
import SegIO
import Synchronization

/// A training sample as stored: the image (C × H × W), the mask and weight map (H × W of the
/// label window), and the JSON record.
public struct StoredSample: Sendable, Equatable {
  public var key: String
  /// float32 (integer storage is scaled back by the manifest's image_scale).
  public var image: Image
  public var mask: Image?
  /// float32.
  public var weight: Image?
  public var record: JSONValue
  /// Where it lies: shard and member index.
  public var shard: Int
  public var member: Int
}

/// How images, masks and weight maps become `.npy` members and back.
public enum SampleCodec {
  public static let imageDTypes = ["float32", "float16", "uint8", "uint16"]
  public static let maskDTypes = ["uint8", "uint16", "uint32"]
  public static let weightDTypes = ["float32", "float16"]

  /// Bytes per element of a dtype.
  public static func bytes(_ dtype: String) -> Int {
    switch dtype {
    case "uint8": return 1
    case "uint16", "float16": return 2
    default: return 4
    }
  }

  /// The default scale of an integer image dtype (values in [0, 1] fill the type's range).
  public static func defaultScale(_ dtype: String) -> Double {
    switch dtype {
    case "uint8": return 1.0 / 255
    case "uint16": return 1.0 / 65535
    default: return 1
    }
  }

  /// C × H × W `.npy` of `image` (float32) in `dtype`; integer dtypes hold
  /// round(clamp(x / scale)).
  public static func encodeImage(_ image: Image, dtype: String, scale: Double) -> [UInt8] {
    switch dtype {
    case "float16": return NpyArray(image: image, dtype: .float16).encoded()
    case "uint8", "uint16":
      let inv = Float(1 / scale)
      let scaled = Image(
        width: image.width, height: image.height, channels: image.channels, pixels: image.floatSamples().map { $0 * inv })
      return NpyArray(image: scaled, dtype: dtype == "uint8" ? .uint8 : .uint16).encoded()
    default: return NpyArray(image: image, dtype: .float32).encoded()
    }
  }

  /// H × W `.npy` of a mask or weight map.
  public static func encodePlane(_ image: Image, dtype: String) -> [UInt8] {
    let t: NpyArray.DType
    switch dtype {
    case "uint8": t = .uint8
    case "uint16": t = .uint16
    case "uint32": t = .uint32
    case "float16": t = .float16
    default: t = .float32
    }
    return NpyArray(image: image, dtype: t, squeeze: true).encoded()
  }

  /// The image back as float32 (integer dtypes multiplied by `scale`).
  public static func decodeImage(_ bytes: [UInt8], scale: Double, path: String, key: String) throws(CacheError) -> Image {
    let array = try decodeArray(bytes, path: path, key: key, member: "image")
    guard array.shape.count == 3, array.shape.allSatisfy({ $0 >= 1 }) else {
      throw CacheError(.badMember, path: path, "\(key).image.npy has shape \(array.shape), expected C × H × W")
    }
    var values = array.floats()
    if array.dtype == .uint8 || array.dtype == .uint16 {
      let s = Float(scale)
      for i in values.indices { values[i] *= s }
    }
    return Image(width: array.shape[2], height: array.shape[1], channels: array.shape[0], pixels: values)
  }

  /// A mask (integer dtype kept) or weight map (float32) back from H × W `.npy`.
  public static func decodePlane(_ bytes: [UInt8], path: String, key: String, member: String) throws(CacheError) -> Image {
    let array = try decodeArray(bytes, path: path, key: key, member: member)
    guard array.shape.count == 2, array.shape.allSatisfy({ $0 >= 1 }) else {
      throw CacheError(.badMember, path: path, "\(key).\(member).npy has shape \(array.shape), expected H × W")
    }
    let (h, w) = (array.shape[0], array.shape[1])
    switch array.dtype {
    case .uint8: return Image(width: w, height: h, pixels: array.data)
    case .uint16: return Image(width: w, height: h, pixels: array.values(as: UInt16.self))
    case .uint32: return Image(width: w, height: h, pixels: array.values(as: UInt32.self))
    default: return Image(width: w, height: h, pixels: array.floats())
    }
  }

  /// A sample's JSON record.
  public static func decodeRecord(_ bytes: [UInt8], path: String, key: String) throws(CacheError) -> JSONValue {
    do {
      return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    } catch {
      throw CacheError(.badMember, path: path, "\(key).json is not valid JSON")
    }
  }

  static func decodeArray(_ bytes: [UInt8], path: String, key: String, member: String) throws(CacheError) -> NpyArray {
    do {
      return try NpyArray.decode(bytes)
    } catch {
      throw CacheError(.badMember, path: path, "\(key).\(member).npy: \(error.message)")
    }
  }
}

/// A shard set opened for reading through its manifest.
public struct ShardSet: Sendable {
  public let directory: String
  public let manifest: ShardManifest

  /// Opens `directory/manifest.json`.
  public init(directory: String, limits: ManifestLimits = ManifestLimits()) throws(CacheError) {
    var dir = directory
    while dir.count > 1 && dir.hasSuffix("/") { dir.removeLast() }
    self.directory = dir
    self.manifest = try ShardManifest.read(dir + "/manifest.json", limits: limits)
  }

  /// A shard set whose manifest was read already (e.g. checked by the caller).
  public init(directory: String, manifest: ShardManifest) {
    self.directory = directory
    self.manifest = manifest
  }

  public func path(ofShard i: Int) -> String { directory + "/" + manifest.shards[i].name }

  /// Reads a whole shard, checking its size and SHA-256 against the manifest.
  public func shardBytes(_ i: Int, verify: Bool = true) throws(CacheError) -> [UInt8] {
    let entry = manifest.shards[i]
    let path = path(ofShard: i)
    let bytes: [UInt8]
    do {
      bytes = try FileIO.read(path)
    } catch {
      throw CacheError(
        error.code == .notFound ? .missingShard : .ioFailure, path: path, error.message,
        hint: "rebuild with `unet prepare`")
    }
    guard bytes.count == entry.bytes else {
      throw CacheError(
        bytes.count < entry.bytes ? .truncated : .checksumMismatch, path: path,
        "has \(bytes.count) bytes, the manifest says \(entry.bytes)", hint: "rebuild with `unet prepare`")
    }
    if verify {
      let digest = SHA256.hex(bytes)
      guard digest == entry.sha256 else {
        throw CacheError(
          .checksumMismatch, path: path, "SHA-256 \(digest.prefix(12))… differs from the manifest's \(entry.sha256.prefix(12))…",
          hint: "the file was altered; rebuild with `unet prepare`")
      }
    }
    return bytes
  }

  /// Checks a shard's size and SHA-256.
  public func verify(shard i: Int) throws(CacheError) {
    _ = try shardBytes(i, verify: true)
  }

  /// Every sample of a shard (checksum verified first).
  public func samples(inShard i: Int, verify: Bool = true) throws(CacheError) -> [StoredSample] {
    let bytes = try shardBytes(i, verify: verify)
    var out: [StoredSample] = []
    for m in manifest.shards[i].members.indices {
      out.append(try decode(bytes, shard: i, member: m))
    }
    return out
  }

  /// One sample by random access: reads only its members' byte ranges (no checksum: use
  /// `verify(shard:)` for that).
  public func sample(shard i: Int, member m: Int) throws(CacheError) -> StoredSample {
    let entry = manifest.shards[i].members[m]
    let path = path(ofShard: i)
    let ranges = [entry.image, entry.mask, entry.weight, entry.json].compactMap { $0 }
    let end = ranges.map { $0[0] + $0[1] }.max() ?? 0
    let start = ranges.map { $0[0] }.min() ?? 0
    let bytes = try readRange(path, offset: start, count: end - start)
    return try decode(bytes, shard: i, member: m, base: start)
  }

  func readRange(_ path: String, offset: Int, count: Int) throws(CacheError) -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw CacheError(.missingShard, path: path, "cannot open", hint: "rebuild with `unet prepare`")
    }
    defer { try? handle.close() }
    do {
      try handle.seek(toOffset: UInt64(offset))
      let data = try handle.read(upToCount: count) ?? Data()
      guard data.count == count else { throw CacheError(.truncated, path: path, "ends before byte \(offset + count)") }
      return Array(data)
    } catch let e as CacheError {
      throw e
    } catch {
      throw CacheError(.ioFailure, path: path, "\(error)")
    }
  }

  func decode(_ bytes: [UInt8], shard i: Int, member m: Int, base: Int = 0) throws(CacheError) -> StoredSample {
    let entry = manifest.shards[i].members[m]
    let path = path(ofShard: i)
    func slice(_ r: [Int]) throws(CacheError) -> [UInt8] {
      guard r.count == 2, r[0] - base >= 0, r[0] - base + r[1] <= bytes.count else {
        throw CacheError(.badMember, path: path, "member offsets of \(entry.key) lie outside the shard")
      }
      return Array(bytes[(r[0] - base)..<(r[0] - base + r[1])])
    }
    let image = try SampleCodec.decodeImage(try slice(entry.image), scale: manifest.settings.imageScale, path: path, key: entry.key)
    guard [image.channels, image.height, image.width] == entry.shape else {
      throw CacheError(.badMember, path: path, "\(entry.key).image.npy is \([image.channels, image.height, image.width]), the manifest says \(entry.shape)")
    }
    let mask = try entry.mask.map { (r) throws(CacheError) -> Image in
      try SampleCodec.decodePlane(try slice(r), path: path, key: entry.key, member: "mask")
    }
    let weight = try entry.weight.map { (r) throws(CacheError) -> Image in
      try SampleCodec.decodePlane(try slice(r), path: path, key: entry.key, member: "weight")
    }
    let record = try SampleCodec.decodeRecord(try slice(entry.json), path: path, key: entry.key)
    return StoredSample(key: entry.key, image: image, mask: mask, weight: weight, record: record, shard: i, member: m)
  }
}

// MARK: - Streaming with shuffle buffer and prefetch

/// A bounded queue between a producer thread and one consumer.
final class PrefetchQueue<T: Sendable>: Sendable {
  private let items = Mutex<[T]>([])
  private let filled: DispatchSemaphore
  private let space: DispatchSemaphore
  private let stopped = Mutex(false)

  init(capacity: Int) {
    filled = DispatchSemaphore(value: 0)
    // Start at zero and signal up to the capacity: libdispatch traps when a semaphore is
    // freed with a value below the one it was created with, which is the normal state of a
    // queue whose consumer stopped before draining it.
    space = DispatchSemaphore(value: 0)
    for _ in 0..<max(capacity, 1) { space.signal() }
  }

  /// Blocks while full; returns false once the consumer has stopped.
  func push(_ item: T) -> Bool {
    while space.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
      if stopped.withLock({ $0 }) { return false }
    }
    if stopped.withLock({ $0 }) { return false }
    items.withLock { $0.append(item) }
    filled.signal()
    return true
  }

  /// Blocks until an item is there.
  func pop() -> T {
    filled.wait()
    let item = items.withLock { $0.removeFirst() }
    space.signal()
    return item
  }

  func stop() {
    stopped.withLock { $0 = true }
    space.signal()
  }
}

/// Samples from a shard set in a seeded random order, for training: the shard order is shuffled
/// per epoch, a background thread reads and verifies shards ahead of the consumer, and a
/// shuffle buffer mixes samples across shards (as WebDataset's `shuffle(n)` does). The order
/// depends only on (seed, epoch, buffer size, shard subset).
public final class ShardStream {
  enum Item: Sendable {
    case sample(StoredSample)
    case corrupt(shard: Int, CacheError)
    case failure(CacheError)
    case end
  }

  public let set: ShardSet
  private let queue: PrefetchQueue<Item>
  private var buffer: [StoredSample] = []
  private let bufferSize: Int
  private var rng: RandomStream
  private var exhausted = false
  private let skipCorrupt: Bool
  /// Shards skipped as corrupt so far (with `skipCorrupt`).
  public private(set) var skipped: [(shard: Int, error: CacheError)] = []

  /// - Parameters:
  ///   - shards: which shards (nil = all), e.g. a training split.
  ///   - shuffleBuffer: samples held for mixing (0 or 1 = no mixing, shard order only).
  ///   - prefetch: samples read ahead by the background thread.
  ///   - skipCorrupt: skip shards that fail their checksum (counted in `skipped`) instead of
  ///     throwing.
  ///   - include: keeps only the samples it accepts (e.g. a training split by source).
  public init(
    set: ShardSet, shards: [Int]? = nil, seed: UInt64, epoch: Int, shuffle: Bool = true, shuffleBuffer: Int = 256,
    prefetch: Int = 64, verify: Bool = true, skipCorrupt: Bool = false,
    include: @escaping @Sendable (SampleEntry) -> Bool = { _ in true }
  ) {
    self.set = set
    self.bufferSize = shuffle ? max(shuffleBuffer, 1) : 1
    self.skipCorrupt = skipCorrupt
    var order = shards ?? Array(set.manifest.shards.indices)
    var orderRNG = RandomStream(seed: seed, path: [0x5EAD, UInt64(epoch)])
    if shuffle { orderRNG.shuffle(&order) }
    self.rng = RandomStream(seed: seed, path: [0xB0F, UInt64(epoch)])
    let queue = PrefetchQueue<Item>(capacity: max(prefetch, 1))
    self.queue = queue
    let producerSet = set
    let shardOrder = order
    let thread = Thread {
      for shard in shardOrder {
        do throws(CacheError) {
          let entries = producerSet.manifest.shards[shard].members
          guard entries.contains(where: include) else { continue }
          for sample in try producerSet.samples(inShard: shard, verify: verify) where include(entries[sample.member]) {
            if !queue.push(.sample(sample)) { return }
          }
        } catch {
          let item: Item = skipCorrupt ? .corrupt(shard: shard, error) : .failure(error)
          if !queue.push(item) || !skipCorrupt { return }
        }
      }
      _ = queue.push(.end)
    }
    thread.name = "unet-shard-prefetch"
    thread.start()
  }

  deinit { queue.stop() }

  /// The next sample, or nil at the end of the epoch.
  public func next() throws(CacheError) -> StoredSample? {
    while !exhausted && buffer.count < bufferSize {
      switch queue.pop() {
      case .sample(let s): buffer.append(s)
      case .corrupt(let shard, let error): skipped.append((shard, error))
      case .failure(let error):
        exhausted = true
        throw error
      case .end: exhausted = true
      }
    }
    guard !buffer.isEmpty else { return nil }
    let k = bufferSize > 1 ? rng.nextInt(below: buffer.count) : 0
    buffer.swapAt(k, buffer.count - 1)
    return buffer.removeLast()
  }
}
