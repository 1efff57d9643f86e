import Foundation
import SegCache
import SegCore
import SegTestSupport
import Testing

@Suite struct TarTests {
  @Test func membersRoundTripWithOffsetsAndPadding() throws {
    let dir = TestPaths.temporaryDirectory("tar")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/a.tar"
    let writer = try TarFileWriter(path: path)
    var rng = RandomStream(seed: 1)
    var expected: [(String, [UInt8], Int)] = []
    for (i, size) in [0, 1, 511, 512, 513, 5000].enumerated() {
      let data = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
      let offset = try writer.add(name: "k\(i).image.npy", data: data)
      expected.append(("k\(i).image.npy", data, offset))
    }
    #expect(!FileManager.default.fileExists(atPath: path), "the archive appears only when finished")
    let (bytes, digest) = try writer.finish()
    let file = try FileIO.read(path)
    #expect(file.count == bytes && bytes % 512 == 0 && SHA256.hex(file) == digest)
    let members = try Tar.members(file, path: path)
    #expect(members.map(\.name) == expected.map(\.0))
    for (m, e) in zip(members, expected) {
      #expect(m.offset == e.2 && Array(file[m.offset..<(m.offset + m.size)]) == e.1)
    }
    #expect(try FileIO.listDirectory(dir) == ["a.tar"], "no temporary file left behind")
  }

  @Test func damagedArchivesThrow() throws {
    let dir = TestPaths.temporaryDirectory("tar-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/a.tar"
    let writer = try TarFileWriter(path: path)
    try writer.add(name: "x.json", data: Array("{}".utf8))
    _ = try writer.finish()
    let good = try FileIO.read(path)
    var badChecksum = good
    badChecksum[10] ^= 1
    #expect { try Tar.members(badChecksum, path: path) } throws: { ($0 as? CacheError)?.code == .corrupt }
    #expect { try Tar.members(Array(good.prefix(700)), path: path) } throws: { ($0 as? CacheError)?.code == .truncated }
    #expect { try Tar.members(Array(good.prefix(100)), path: path) } throws: { ($0 as? CacheError)?.code == .truncated }
  }

  @Test func headersAreDeterministic() {
    #expect(Tar.header(name: "a.npy", size: 10) == Tar.header(name: "a.npy", size: 10))
    let h = Tar.header(name: "a.npy", size: 10)
    #expect(String(decoding: h[257..<262], as: UTF8.self) == "ustar")
    #expect(String(decoding: h[124..<135], as: UTF8.self) == "00000000012")
  }
}
