import Foundation
import SegCore

#if canImport(Glibc)
  import Glibc
#endif

/// The names of the files in a shard-set folder.
public enum ShardFileNames {
  public static let manifest = "manifest.json"

  /// The k-th shard and its index (`shard-NNNNNN.tar`, `shard-NNNNNN.idx.json`).
  public static func shard(_ k: Int) -> String { "shard-\(pad(k, 6)).tar" }
  public static func index(_ k: Int) -> String { "shard-\(pad(k, 6)).idx.json" }

  /// A shard (and its index) written but not yet moved into place, named by its content key.
  static func staged(_ key: String) -> String { ".staged-\(key).tar" }
  static func stagedIndex(_ key: String) -> String { ".staged-\(key).idx.json" }

  /// The partial manifest of part `index` of a distributed run of `count` parts.
  public static func partManifest(_ index: Int, of count: Int) -> String {
    "manifest.part-\(pad(index, 4))-of-\(pad(count, 4)).json"
  }

  /// A sample key: no dots (WebDataset splits member names at the first dot).
  public static func sampleKey(stem: String, sample: Int, tile: Int) -> String {
    let safe = String(stem.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    return "\(safe)_s\(pad(sample, 5))_t\(pad(tile, 3))"
  }

  static func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, width - s.count)) + s
  }
}

/// Writes one shard: tar members as samples arrive, then the index file, both under staging
/// names that carry the shard's content key (``ShardSetWriter/promote(shard:key:)`` moves
/// them into place).
public final class ShardBuilder {
  public let shard: Int
  public let key: String
  public let pipelineSamples: Range<Int>
  let settings: ShardSettings
  let directory: String
  private let writer: TarFileWriter
  private var members: [SampleEntry] = []

  /// Starts shard `shard` (content key `key`, holding the pipeline samples
  /// `pipelineSamples`) in `directory`; members are encoded as the set's `settings` say.
  public init(
    directory: String, shard: Int, key: String, pipelineSamples: Range<Int>, settings: ShardSettings
  ) throws(FileIOError) {
    self.directory = directory
    self.shard = shard
    self.key = key
    self.pipelineSamples = pipelineSamples
    self.settings = settings
    writer = try TarFileWriter(path: directory + "/" + ShardFileNames.staged(key))
  }

  /// Appends a training sample: `KEY.image.npy`, `KEY.mask.npy` and `KEY.weight.npy` when
  /// there are a mask and a weight map, and `KEY.json` (the `key` field, then `record`).
  ///
  /// - Parameters:
  ///   - source, sample, tile: which source, which of its pipeline samples, which tile of it.
  public func add(
    key: String, image: Image, mask: Image?, weights: Image?, record: [(String, JSONValue)], source: Int, sample: Int,
    tile: Int
  ) throws(FileIOError) {
    let imageBytes = SampleCodec.encodeImage(image, dtype: settings.imageDType, scale: settings.imageScale)
    let imageOffset = try writer.add(name: key + ".image.npy", data: imageBytes)
    var maskRange: [Int]? = nil
    if let mask {
      let bytes = SampleCodec.encodePlane(mask, dtype: settings.maskDType ?? "uint16")
      maskRange = [try writer.add(name: key + ".mask.npy", data: bytes), bytes.count]
    }
    var weightRange: [Int]? = nil
    if let weights {
      let bytes = SampleCodec.encodePlane(weights, dtype: settings.weightDType ?? "float32")
      weightRange = [try writer.add(name: key + ".weight.npy", data: bytes), bytes.count]
    }
    let json = Array(JSONValue.object([("key", .string(key))] + record).serialized().utf8) + [0x0A]
    let jsonOffset = try writer.add(name: key + ".json", data: json)
    members.append(
      SampleEntry(
        key: key, image: [imageOffset, imageBytes.count], mask: maskRange, weight: weightRange,
        json: [jsonOffset, json.count], shape: [image.channels, image.height, image.width],
        labelShape: mask.map { [$0.height, $0.width] } ?? weights.map { [$0.height, $0.width] }, source: source,
        sample: sample, tile: tile))
  }

  /// A generous estimate of one training sample's bytes in a shard: four tar headers, the
  /// arrays (masks counted at 4 bytes a pixel) and 2 KiB for `.npy` headers, the JSON record
  /// and padding.
  public static func estimatedBytes(
    imageSamples: Int, imageDType: String, maskSamples: Int, weightSamples: Int, weightDType: String
  ) -> Int {
    4 * Tar.block + imageSamples * SampleCodec.bytes(imageDType) + maskSamples * 4
      + weightSamples * SampleCodec.bytes(weightDType) + 2048
  }

  /// Ends the tar (fsync, rename to its staging name), then writes its index the same way.
  public func finish() throws -> ShardEntry {
    let (bytes, digest) = try writer.finish()
    let entry = ShardEntry(
      name: ShardFileNames.shard(shard), key: key, bytes: bytes, sha256: digest, pipelineSamples: pipelineSamples,
      members: members)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    try FileIO.writeAtomically(Array(try encoder.encode(entry)), to: directory + "/" + ShardFileNames.stagedIndex(key))
    return entry
  }
}

/// The writing side of a shard-set folder: which shards can be reused, moving staged shards
/// into place, the manifest, and removing what a run left behind.
///
/// The order is what makes writing crash-safe: each shard is staged (tar, then its index)
/// under its content key; only when every shard of a run is staged are they promoted to
/// `shard-NNNNNN.tar` (index last), and the manifest is written last of all.
public struct ShardSetWriter: Sendable {
  public let directory: String

  /// Creates `directory` (and its parents) when missing.
  public init(directory: String) throws(CacheError) {
    do {
      try FileIO.makeDirectories(directory)
    } catch {
      throw CacheError(.ioFailure, path: directory, error.message)
    }
    self.directory = directory
  }

  /// The manifest a previous run left, when there is a readable one.
  public func previousManifest() -> ShardManifest? {
    try? ShardManifest.read(directory + "/" + ShardFileNames.manifest)
  }

  /// A shard's content key: the SHA-256 of the pipeline's hash, the storage settings' hash
  /// and, per pipeline sample in the shard, its index and its source's ``SourceEntry/contentKey``.
  public static func shardKey(
    pipelineSHA256: String, settingsSHA256: String, samples: Range<Int>, contentKey: (Int) -> String
  ) -> String {
    var h = SHA256()
    h.update(Array("\(pipelineSHA256)|\(settingsSHA256)|".utf8))
    for index in samples {
      h.update(Array("\(index):\(contentKey(index));".utf8))
    }
    return h.finalize().hexString
  }

  /// Shard `k` as already written with the content key `key`: in place, or staged by an
  /// interrupted run (`isStaged`, to be promoted). Nil when neither holds that key with the
  /// recorded size (and, with `verify`, the recorded SHA-256).
  public func reusable(shard k: Int, key: String, verify: Bool) -> (entry: ShardEntry, isStaged: Bool)? {
    let name = ShardFileNames.shard(k)
    if let entry = existing(tar: name, index: ShardFileNames.index(k), key: key, name: name, verify: verify) {
      return (entry, false)
    }
    if let entry = existing(
      tar: ShardFileNames.staged(key), index: ShardFileNames.stagedIndex(key), key: key, name: name, verify: verify)
    {
      return (entry, true)
    }
    return nil
  }

  /// The entry in `index`, if it describes a shard with the expected key and name whose file
  /// `tar` is there with the recorded size (and, with `verify`, the recorded SHA-256).
  func existing(tar: String, index: String, key: String, name: String, verify: Bool) -> ShardEntry? {
    guard let bytes = try? FileIO.read(directory + "/" + index),
      let entry = try? JSONDecoder().decode(ShardEntry.self, from: Data(bytes)),
      entry.key == key, entry.name == name
    else { return nil }
    guard let status = try? FileIO.status(directory + "/" + tar), status.bytes == entry.bytes else { return nil }
    if verify {
      guard let data = try? FileIO.read(directory + "/" + tar), SHA256.hex(data) == entry.sha256 else { return nil }
    }
    return entry
  }

  /// Moves staged shard `k` (content key `key`) into place: the tar, then its index.
  public func promote(shard k: Int, key: String) throws(CacheError) {
    try move(ShardFileNames.staged(key), to: ShardFileNames.shard(k))
    try move(ShardFileNames.stagedIndex(key), to: ShardFileNames.index(k))
  }

  /// rename(2) within the folder, then fsync the folder.
  func move(_ from: String, to: String) throws(CacheError) {
    if rename(directory + "/" + from, directory + "/" + to) != 0 {
      throw CacheError(
        .ioFailure, path: directory + "/" + to, "cannot move \(from) into place: \(String(cString: strerror(errno)))")
    }
    FileIO.syncDirectory(of: directory + "/" + to)
  }

  /// Writes `manifest` atomically as `manifest.json`, or as its part's partial manifest;
  /// returns the path.
  public func writeManifest(_ manifest: ShardManifest) throws -> String {
    let name = manifest.part.map { ShardFileNames.partManifest($0.index, of: $0.count) } ?? ShardFileNames.manifest
    let path = directory + "/" + name
    try Self.writeUnlessSame(try manifest.encoded(), to: path)
    return path
  }

  /// Writes `bytes` atomically unless the file holds them already, so a run with nothing to do
  /// writes nothing (and succeeds on a read-only folder).
  static func writeUnlessSame(_ bytes: [UInt8], to path: String) throws(FileIOError) {
    if let existing = try? FileIO.read(path), existing == bytes { return }
    try FileIO.writeAtomically(bytes, to: path)
  }

  /// Removes shards and indexes numbered at or above `count` (left from a bigger earlier run),
  /// staged shards no manifest uses, and temporary files of interrupted writes.
  public func removeStale(keeping count: Int) {
    guard let names = try? FileIO.listDirectory(directory) else { return }
    for name in names {
      if name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(".staged-")) {
        FileIO.remove(directory + "/" + name)
        continue
      }
      guard name.hasPrefix("shard-"), name.hasSuffix(".tar") || name.hasSuffix(".idx.json") else { continue }
      let digits = name.dropFirst(6).prefix { $0.isNumber }
      if let k = Int(digits), k >= count { FileIO.remove(directory + "/" + name) }
    }
  }
}

extension FileEntry {
  /// The entry of the file at `path`: its size, modification time and SHA-256; the hash is
  /// taken from `known` (not read again) when its size and modification time are unchanged.
  public static func of(_ path: String, reusing known: FileEntry?) throws(FileIOError) -> FileEntry {
    let status = try FileIO.status(path)
    if let known, known.bytes == status.bytes, known.mtimeNanoseconds == status.mtimeNanoseconds { return known }
    let bytes = try FileIO.read(path)
    return FileEntry(path: path, bytes: status.bytes, mtimeNanoseconds: status.mtimeNanoseconds, sha256: SHA256.hex(bytes))
  }
}

extension SourceEntry {
  /// The hashes that decide this source's samples.
  public var contentKey: String {
    (images.map(\.sha256) + [mask?.sha256 ?? "-"]).joined(separator: ",")
  }
}

extension ShardManifest {
  /// Every source file's entry, by path.
  public var filesByPath: [String: FileEntry] {
    var files: [String: FileEntry] = [:]
    for s in sources {
      for f in s.images + (s.mask.map { [$0] } ?? []) { files[f.path] = f }
    }
    return files
  }
}
