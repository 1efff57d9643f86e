import SegCore

extension ShardSetWriter {
  /// Joins the partial manifests of a distributed run (`manifest.part-*.json`) into
  /// manifest.json, after checking that they belong together, that no part is missing and
  /// that every shard they list is there with its recorded size.
  public static func merge(directory: String, limits: ManifestLimits = ManifestLimits()) throws(CacheError) -> ShardManifest {
    let lock = try ShardSetLock.acquire(directory: directory, part: 0, of: 1, merging: true)
    defer { withExtendedLifetime(lock) {} }
    let names: [String]
    do {
      names = try FileIO.listDirectory(directory).filter { $0.hasPrefix("manifest.part-") && $0.hasSuffix(".json") }
    } catch {
      throw CacheError(.ioFailure, path: directory, error.message)
    }
    guard !names.isEmpty else {
      throw CacheError(.missingManifest, path: directory, "no partial manifests (manifest.part-*.json) to merge")
    }
    var parts: [ShardManifest] = []
    for name in names { parts.append(try ShardManifest.read(directory + "/" + name, limits: limits)) }
    guard let first = parts.first, let info = first.part else {
      throw CacheError(.mergeConflict, path: directory + "/" + names[0], "not a partial manifest")
    }
    for (name, p) in zip(names, parts) {
      let path = directory + "/" + name
      guard let pi = p.part, pi.count == info.count, pi.totalShards == info.totalShards else {
        throw CacheError(.mergeConflict, path: path, "belongs to a run with another part count or shard count")
      }
      guard p.pipelineSHA256 == first.pipelineSHA256, p.settings == first.settings, p.sources == first.sources else {
        throw CacheError(.mergeConflict, path: path, "was made from another pipeline, settings or sources than \(names[0])")
      }
    }
    let present = Set(parts.compactMap { $0.part?.index })
    let missing = (0..<info.count).filter { !present.contains($0) }
    guard missing.isEmpty else {
      throw CacheError(
        .mergeConflict, path: directory, "parts \(missing.map(String.init).joined(separator: ", ")) of \(info.count) are missing",
        hint: "run `unet prepare --shard-index i --shard-count \(info.count)` for them first")
    }
    var shards = parts.flatMap(\.shards)
    shards.sort { $0.name < $1.name }
    guard shards.count == info.totalShards, Set(shards.map(\.name)).count == shards.count else {
      throw CacheError(.mergeConflict, path: directory, "the parts hold \(shards.count) shards, expected \(info.totalShards)")
    }
    for s in shards {
      let path = directory + "/" + s.name
      guard let status = try? FileIO.status(path) else {
        throw CacheError(.missingShard, path: path, "listed by a partial manifest but missing")
      }
      guard status.bytes == s.bytes else {
        throw CacheError(.checksumMismatch, path: path, "has \(status.bytes) bytes, its partial manifest says \(s.bytes)")
      }
    }
    let merged = ShardManifest(
      pipeline: first.pipeline, pipelineSHA256: first.pipelineSHA256, pipelineFile: first.pipelineFile,
      settings: first.settings, sources: first.sources, datasetStatistics: first.datasetStatistics,
      classFrequencies: first.classFrequencies, shards: shards, train: first.train)
    do {
      try ShardSetWriter.writeUnlessSame(try merged.encoded(), to: directory + "/" + ShardFileNames.manifest)
    } catch {
      throw CacheError(.ioFailure, path: directory + "/" + ShardFileNames.manifest, "\(error)")
    }
    // Temporary manifests of merges killed before their rename (we hold the lock: none is live).
    for name in (try? FileIO.listDirectory(directory)) ?? [] where name.hasPrefix(".manifest.json.tmp-") {
      FileIO.remove(directory + "/" + name)
    }
    return merged
  }
}
