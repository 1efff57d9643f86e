import Foundation
import SegCore
import SegTestSupport
import Testing

@Suite struct ImageTests {
  @Test func planarLayoutAndAccessors() {
    // 2 channels × 2 rows × 3 columns
    let image = Image(width: 3, height: 2, channels: 2, pixels: (0..<12).map { UInt8($0) })
    #expect(image.value(channel: 1, y: 1, x: 2) == 11)
    #expect(image.value(channel: 0, y: 1, x: 0) == 3)
    #expect(image.channel(1).labelSamples() == [6, 7, 8, 9, 10, 11])
    #expect(image.interleavedBytes() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11])
    #expect(Image.stack([image.channel(0), image.channel(1)]) == image)
  }

  @Test func conversionsRoundAndClamp() {
    let f = Image(width: 5, height: 1, pixels: [Float(-3), 0.4, 0.5, 254.6, 1e9])
    #expect(f.converted(to: .uint8).labelSamples() == [0, 0, 1, 255, 255])  // .5 rounds away from zero
    #expect(f.converted(to: .uint16).labelSamples() == [0, 0, 1, 255, 65535])
    let u = Image(width: 2, height: 1, pixels: [UInt16(65535), 7])
    #expect(u.toFloat32(scale: 1 / 65535).floatSamples() == [1, Float(7) / 65535])
    #expect(Image(width: 2, height: 1, pixels: [Float.nan, 2]).range! == (2, 2))
  }

  @Test func jsonValueSerializesInOrderAndEscapes() {
    let v: JSONValue = .object([("b", 1), ("a", .array([.double(0.5), .double(2), .null, .bool(true)])), ("s", "q\"\n\u{1}")])
    #expect(v.serialized() == "{\"b\": 1, \"a\": [0.5, 2.0, null, true], \"s\": \"q\\\"\\n\\u0001\"}")
    #expect(JSONValue.double(.infinity).serialized() == "null")
    let parsed = try? JSONSerialization.jsonObject(with: Data(v.serialized().utf8)) as? [String: Any]
    #expect(parsed?["s"] as? String == "q\"\n\u{1}")
  }

  @Test func atomicWriteReplacesAndLeavesNoTemporaryFiles() throws {
    let dir = TestPaths.temporaryDirectory("fileio")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/out.bin"
    try FileIO.writeAtomically([1, 2, 3], to: path)
    try FileIO.writeAtomically([4, 5], to: path)
    #expect(try FileIO.read(path) == [4, 5])
    #expect(try FileIO.listDirectory(dir) == ["out.bin"])
    #expect(throws: FileIOError.self) { try FileIO.writeAtomically([1], to: dir + "/missing/x") }
    #expect { try FileIO.read(dir + "/nope") } throws: { ($0 as? FileIOError)?.code == .notFound }
  }
}

@Suite struct SHA256Tests {
  @Test func nistVectors() {
    #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(
      SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
        == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    #expect(
      SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
        == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  @Test func incrementalEqualsOneShot() {
    var rng = RandomStream(seed: 1)
    let data = (0..<1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    for split in [0, 1, 63, 64, 65, 500, 999, 1000] {
      var h = SHA256()
      h.update(data[..<split])
      h.update(data[split...])
      #expect(h.finalize() == SHA256.hash(data), "split \(split)")
    }
  }
}
