import Foundation
import SegCache
import SegCore
import SegIO
import SegTestSupport
import Testing

/// Python reads our shards with tarfile + numpy (and webdataset when installed).
@Suite struct InteropTests {
  static func python() -> String? {
    let onPath = ProcessInfo.processInfo.environment["PATH", default: ""].split(separator: ":").map { String($0) + "/python3" }
    for candidate in onPath + ["/usr/bin/python3", "/usr/local/bin/python3"]
    where FileManager.default.isExecutableFile(atPath: candidate) {
      if let r = try? runCommand(candidate, ["-c", "import numpy"]), r.status == 0 { return candidate }
    }
    return nil
  }

  @Test(arguments: ["float32", "float16", "uint8"])
  func pythonReadsTheShards(imageDType: String) throws {
    guard let python = Self.python() else {
      Issue.record("python3 with numpy is needed for the interoperability test (.ci/install provides it)")
      return
    }
    let dir = TestPaths.temporaryDirectory("interop")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let cells = TestPaths.fixtures + "/cells"
    let pipeline = """
      version: 1
      seed: 8
      sources: {images: \(cells)/images/*.png, masks: \(cells)/labels/*.png}
      samples_per_image: 2
      mask: {kind: instances}
      stages:
        - normalize: {method: scale, factor: 0.00392156862745098}
        - affine: {rotate: [-10, 10]}
        - weight_map: {}
      tiles: {network: {depth: 2, padding: valid}, output: 36, mode: random, count: 2}
      shards: {samples_per_shard: 3, image_dtype: \(imageDType), weight_dtype: \(imageDType == "float16" ? "float16" : "float32"), mask_dtype: uint16}
      """
    try pipeline.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
    let prep = try runUnet(["prepare", dir + "/p.yaml", "--out", dir + "/shards", "--quiet"])
    #expect(prep.status == 0, "\(prep.stderr)")
    // Expectations from the Swift reader: dtype, shape, SHA-256 of the raw array bytes, sum.
    let set = try ShardSet(directory: dir + "/shards")
    var expectations: [JSONValue] = []
    for i in set.manifest.shards.indices {
      let bytes = try set.shardBytes(i)
      let members = try Tar.members(bytes, path: set.path(ofShard: i))
      for entry in set.manifest.shards[i].members {
        var fields: [(String, JSONValue)] = [("key", .string(entry.key))]
        for part in ["image", "mask", "weight"] {
          guard let m = members.first(where: { $0.name == entry.key + "." + part + ".npy" }) else { continue }
          let array = try NpyArray.decode(Array(bytes[m.offset..<(m.offset + m.size)]))
          fields.append((part, .object([
            ("dtype", .string(array.dtype.rawValue)), ("shape", .array(array.shape.map { .int($0) })),
            ("sha256", .string(SHA256.hex(array.data))), ("sum", .double(array.doubles().reduce(0, +))),
          ])))
        }
        let record = try set.sample(shard: i, member: set.manifest.shards[i].members.firstIndex(of: entry) ?? 0).record
        fields.append(("index", record["index"] ?? .null))
        expectations.append(.object(fields))
      }
    }
    try JSONValue.array(expectations).serialized().write(toFile: dir + "/expect.json", atomically: true, encoding: .utf8)
    let script = TestPaths.repositoryRoot + "/Tests/Interop/read_shards.py"
    let r = try runCommand(python, [script, dir + "/shards", dir + "/expect.json"])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.contains("tarfile+numpy: \(expectations.count) samples in \(set.manifest.shards.count) shards match"))
    print(r.stdout, terminator: "")
  }
}
