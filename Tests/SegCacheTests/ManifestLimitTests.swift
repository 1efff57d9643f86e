import Foundation
import SegCache
import SegCore
import SegTestSupport
import Testing

/// Manifests from a stranger: counts that would make readers allocate or loop for ever, and
/// entries that would make them index out of bounds, are refused when the manifest is read.
@Suite struct ManifestLimitTests {
  /// A valid manifest (a seed of the manifest fuzzer, made by `unet prepare`) as a JSON object.
  static func seed() throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.repositoryRoot + "/Tests/Fuzz/seeds/manifest/uint8-float16.json"))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  static func bytes(_ object: [String: Any]) throws -> [UInt8] {
    Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
  }

  /// The manifest with `edit` applied to its first shard entry.
  static func editingShard(_ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
    var m = try seed()
    var shards = try #require(m["shards"] as? [[String: Any]])
    edit(&shards[0])
    m["shards"] = shards
    return try bytes(m)
  }

  /// The manifest with `edit` applied to the first member of its first shard.
  static func editingMember(_ edit: @escaping (inout [String: Any]) -> Void) throws -> [UInt8] {
    try editingShard { shard in
      var members = shard["members"] as? [[String: Any]] ?? []
      edit(&members[0])
      shard["members"] = members
    }
  }

  static func refusal(_ bytes: [UInt8], _ limits: ManifestLimits = ManifestLimits(maxSamples: 10_000_000)) -> CacheError? {
    do {
      _ = try ShardManifest.decode(bytes, path: "x/manifest.json", limits: limits)
      return nil
    } catch {
      #expect(!error.description.contains("\n") && error.description.hasPrefix("x/manifest.json: "))
      return error
    }
  }

  @Test func theSeedIsAccepted() throws {
    let m = try ShardManifest.decode(try Self.bytes(try Self.seed()), path: "x/manifest.json")
    #expect(m.sampleCount == 2 && m.shards.count == 2)
  }

  @Test func aManifestClaiming10To9SamplesIsRefusedNamingTheLimit() throws {
    let claim = try Self.editingShard { $0["samples"] = 1_000_000_000 }
    let e = Self.refusal(claim)
    #expect(e?.code == .tooLarge)
    #expect(e?.message.contains("1000000000 samples") == true && e?.message.contains("10000000") == true)
    #expect(e?.hint?.contains("--max-samples") == true)
    // Raising the limit gets past it, to the next check: the shard lists one member, not 10^9.
    let raised = Self.refusal(claim, ManifestLimits(maxSamples: 2_000_000_000))
    #expect(raised?.code == .badManifest && raised?.message.contains("member list has 1 entries") == true)
  }

  @Test func partialManifestsClaimingHugeCountsAreRefused() throws {
    var m = try Self.seed()
    m["part"] = ["index": 0, "count": 2, "total_shards": 1_000_000_000]
    #expect(Self.refusal(try Self.bytes(m))?.code == .tooLarge)
    m["part"] = ["index": 5, "count": 2, "total_shards": 4]
    #expect(Self.refusal(try Self.bytes(m))?.code == .badManifest)
    m["part"] = ["index": 0, "count": Int.max, "total_shards": 4]
    #expect(Self.refusal(try Self.bytes(m))?.code == .tooLarge)
  }

  @Test func aManifestFileLargerThanTheLimitAllowsIsNotRead() throws {
    let dir = TestPaths.temporaryDirectory("manifest-size")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // maxSamples 1 allows 4 KiB + 1 MiB; this file is 2 MiB of spaces after a valid manifest.
    let padded = try Self.bytes(try Self.seed()) + [UInt8](repeating: 0x20, count: 2 << 20)
    try FileIO.writeAtomically(padded, to: dir + "/manifest.json")
    #expect {
      try ShardSet(directory: dir, limits: ManifestLimits(maxSamples: 1))
    } throws: { error in
      guard let e = error as? CacheError else { return false }
      return e.code == .tooLarge && e.message.contains("bytes") && e.hint?.contains("--max-samples") == true
    }
    #expect(try ShardSet(directory: dir).manifest.sampleCount == 2)
  }

  @Test func entriesThatWouldIndexOutOfBoundsAreRefused() throws {
    let cases: [(String, [UInt8])] = [
      ("shape with two axes", try Self.editingMember { $0["shape"] = [16, 16] }),
      ("empty shape", try Self.editingMember { $0["shape"] = [Int]() }),
      ("zero channels", try Self.editingMember { $0["shape"] = [0, 16, 16] }),
      ("label shape of one axis", try Self.editingMember { $0["label_shape"] = [16] }),
      ("range of one number", try Self.editingMember { $0["image"] = [512] }),
      ("negative offset", try Self.editingMember { $0["image"] = [-512, 100] }),
      ("range past the shard", try Self.editingMember { $0["json"] = [512, 1 << 40] }),
      ("offset + size overflows", try Self.editingMember { $0["mask"] = [Int.max, Int.max] }),
      ("image too small for its shape", try Self.editingMember { $0["shape"] = [1, 4096, 4096] }),
      ("negative source index", try Self.editingMember { $0["source"] = -1 }),
      ("shard name with a folder", try Self.editingShard { $0["name"] = "../../etc/passwd.tar" }),
      ("hidden shard name", try Self.editingShard { $0["name"] = ".staged.tar" }),
      ("pipeline samples not a range", try Self.editingShard { $0["pipeline_samples"] = [3] }),
      ("negative bytes", try Self.editingShard { $0["bytes"] = -1 }),
    ]
    for (what, bytes) in cases {
      let e = Self.refusal(bytes)
      #expect(e?.code == .badManifest, "\(what): \(String(describing: e))")
    }
  }
}
